"""Ablation of the hybrid design: the cpu config with each part switched off in turn, on seeds.

    python tests/benchmarks/bench_ablation.py [--data PATH] [--epochs 16] [--seeds 0,1]
        [--rows full,no_attention,...] [--out tests/benchmarks/results/ablation.json]
    python tests/benchmarks/bench_ablation.py --epochs 36 --write-config ROW --out ROW.yaml
    python tests/benchmarks/bench_ablation.py --epochs 36 --from-seeds FOLDER [--seeds 0,1] [--out ...]
        (without --seeds: every seed the rows' files hold)

Every row trains with the same shortened budget (the cpu config's phase shortened to
`--epochs`, its one-cycle schedule compressed to match) from each seed, with the class weights
the config's `compute_class_weights` step computes, and picks its checkpoint on PublicTest.
It is then scored on PublicTest, which decides, and on PrivateTest, which is only reported,
with flip views and with the config's headline TTA; the summary gives each row's mean over the
seeds and its difference from the full design. Runs are independent: an interrupted benchmark
keeps the runs already written to the JSON, and a rerun trains only what is missing. A file
holds one table: runs measured alike (budget, views, class weights, config, precision as
resolved on the machine); a rerun that would measure otherwise is refused and the file kept.

At the config's whole budget a run is a `make train` (`make ablation-full`): `--write-config ROW`
writes the row's whole pipeline config, `bench_seeds` trains it on each seed into
`FOLDER/<row>.json`, and `--from-seeds FOLDER` gathers those files into one table, each file checked
to hold its row's training (the full row's is the config itself, so the headline seeds count).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.report import cpu_kind, machine, shown_path, write_report  # noqa: E402

# name -> (what is switched off, edit of the train config)
ROWS = {
    "full": ("nothing (the cpu config with every hybrid part on)", {}),
    "no_attention": ("SE + spatial attention", {"architecture_kwargs": {"attention": False}}),
    "no_transformer": ("transformer block", {"architecture_kwargs": {"transformer": False}}),
    "no_branches": ("class-group branches (one dense head)", {"architecture_kwargs": {"branches": False}}),
    "no_class_weights": ("class weights", {"use_class_weights": False}),
    "no_class_balanced_augmentation": ("3 augmented copies of disgust", {"class_repeats": {}}),
}


def merge(base: dict, edit: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in edit.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) and value else value
    return out


def settings(config_file: str | Path) -> tuple[dict, dict, str]:
    """The config's train config, its class-weight parameters and its headline TTA."""
    steps = yaml.safe_load(Path(config_file).read_text())["steps"]
    train = copy.deepcopy(steps["train_model"]["parameters"]["config"])
    weights = {"method": "inverse_frequency", **(steps.get("compute_class_weights", {}).get("parameters") or {})}
    tta = (steps.get("evaluate_model", {}).get("parameters") or {}).get("tta", "flip")
    return train, weights, tta


def recipe_hash(train: dict) -> str:
    """The training config as written, less its seed and what shapes nothing (an inert
    `short_budget`, as in `bench_seeds.training_fingerprint`), hashed: what a table's rows share."""
    from tests.benchmarks.bench_seeds import without_inert

    recipe = {key: value for key, value in without_inert(train).items() if key != "seed"}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def same_training(recorded: dict, config: dict) -> bool:
    """Whether a run recorded with train config `recorded` trained what `config` trains: equal but
    for an inert part (a config that gained a `short_budget` since still trains the same)."""
    from tests.benchmarks.bench_seeds import without_inert

    return without_inert(recorded) == without_inert(config)


def table_key(config_file: str | Path, epochs: int, modes: tuple[str, ...], weights: dict, train: dict) -> dict:
    """What makes runs comparable within one file: the config and the recipe it held (a changed
    config is refused rather than replacing some of the rows), the budget, the views, the class
    weights and the precision the training resolves to on this machine (bf16 and fp32 differ)."""
    from ferkit.training import TrainConfig

    return {
        "config": shown_path(config_file),
        "recipe": recipe_hash(train),
        "budget_epochs": epochs,
        "modes": list(modes),
        "class_weights": weights,
        "precision": TrainConfig(**train).concrete_precision,
    }


def shortened(train: dict, epochs: int, config_file: str | Path) -> dict:
    """The config's train config with its single phase at `epochs` and every hybrid part on: each
    part is measured against the full design, whichever parts the config itself switches off. Without
    the config's `deadline`: rows compare at equal epochs, whatever the day's speed."""
    base = copy.deepcopy(train)
    if len(base.get("phases", [])) != 1:
        raise SystemExit(f"{config_file}: the ablation shortens a single-phase config")
    base.pop("deadline", None)
    base["phases"][0]["epochs"] = epochs
    base.setdefault("architecture_kwargs", {}).update(attention=True, transformer=True, branches=True)
    return base


def row_config(config_file: str | Path, epochs: int, name: str) -> dict:
    """The whole pipeline config that trains row `name` with `make train`: `config_file` with the
    row's train config (the full row at the config's own epochs is the config itself)."""
    if name not in ROWS:
        raise SystemExit(f"unknown row {name!r}; expected one of {list(ROWS)}")
    config = yaml.safe_load(Path(config_file).read_text())
    train, _, _ = settings(config_file)
    config["steps"]["train_model"]["parameters"]["config"] = merge(shortened(train, epochs, config_file), ROWS[name][1])
    return config


def _seed_figures(scored: dict) -> dict:
    """A `bench_seeds` split score as `scores` writes one: the figures, disgust and fear recall, and
    the figures on the test faces without a pixel-identical training copy."""
    figures = {k: scored[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")}
    figures |= {f"{emotion}_recall": scored["recall"][emotion] for emotion in ("disgust", "fear")}
    figures |= {f"leakage_free_{k}": v for k, v in (scored.get("leakage_free") or {}).items()}
    return figures


def seeds_runs(folder: Path, config_file: str | Path, epochs: int, names: list[str], seeds: list[int] | None) -> tuple:
    """The runs `bench_seeds` trained into `folder/<row>.json` for `names` and `seeds` (None: every
    seed a file holds, so training one more seed never drops the others from the table), as `run_row`
    writes runs, with the TTA and precision they share. A file must hold its row's training (the
    config `row_config` writes) scored with one TTA at one precision, trained on one kind of CPU (bf16
    kernels of different kinds train different models, like another seed, and a row's difference
    from the full design pairs seeds); a row without a file is left out, saying so."""
    from tests.benchmarks.bench_seeds import training_fingerprint

    runs: list[dict] = []
    shared: dict[str, set] = {"tta": set(), "precision": set(), "kind of CPU": set()}
    for name in names:
        file = folder / f"{name}.json"
        if not file.is_file():
            print(f"{shown_path(file)}: not trained yet; row {name} left out", flush=True)
            continue
        report = json.loads(file.read_text())
        expected = training_fingerprint(row_config(config_file, epochs, name))
        if report.get("training_sha256") != expected:
            raise SystemExit(
                f"{shown_path(file)}: its seeds trained {report.get('training_sha256', 'a training not recorded')}, "
                f"not row {name} of {shown_path(config_file)} at {epochs} epochs ({expected})"
            )
        shared["tta"].add(report["results"]["tta"])
        shared["precision"].add(report.get("precision"))
        for row in report["results"]["rows"]:
            if (seeds is not None and row["seed"] not in seeds) or "test" not in row:
                continue
            if row.get("machine"):
                shared["kind of CPU"].add(cpu_kind(row["machine"]))
            runs.append({
                "row": name,
                "seed": row["seed"],
                "epochs": epochs,
                **({"minutes": row["minutes"]} if "minutes" in row else {}),
                "trained_by": f"make train (bench_seeds) into {shown_path(file)}",
                "switched_off": ROWS[name][0],
                "scores": {split: {report["results"]["tta"]: _seed_figures(row[split])} for split in ("val", "test")},
                "machine": row.get("machine"),
            })  # fmt: skip
    for what, values in shared.items():
        if len(values) > 1:
            raise SystemExit(f"{shown_path(folder)}: the rows' files differ in {what} ({sorted(map(str, values))})")
    runs.sort(key=lambda r: (list(ROWS).index(r["row"]), r["seed"]))
    return runs, next(iter(shared["tta"]), None), next(iter(shared["precision"]), None)


def open_table(out: Path, key: dict) -> list[dict]:
    """The runs already in `out`, when they were measured under `key`; none for a new file. A file
    measured otherwise is refused, not overwritten."""
    if not out.is_file():
        return []
    previous = json.loads(out.read_text()).get("results", {})
    if previous.get("table") != key:
        raise SystemExit(
            f"{out}: its runs were measured under {previous.get('table', 'an earlier format')}; this run "
            f"would be {key}. The file is kept: give another --out."
        )
    return list(previous.get("runs", []))


def scores(model, data, modes: tuple[str, ...]) -> dict:
    """{split: {mode: figures}} on val (PublicTest) and test (PrivateTest), with the recall of
    disgust (the rarest emotion) and fear (the weakest)."""
    from ferkit.data.labels import EMOTIONS
    from ferkit.metrics.classification import classification_metrics
    from ferkit.models.predict import predict_proba_modes

    out: dict = {}
    for split in ("val", "test"):
        part = data.split(split)
        by_mode = predict_proba_modes(model, part.images, modes)
        out[split] = {}
        for mode, probs in by_mode.items():
            figures = {k: round(float(v), 6) for k, v in classification_metrics(part.labels, probs).items()}
            predicted = probs.argmax(1)
            for emotion in ("disgust", "fear"):
                index = EMOTIONS.index(emotion)
                shown = part.labels == index
                figures[f"{emotion}_recall"] = (
                    round(float((predicted[shown] == index).mean()), 6) if shown.any() else 0.0
                )
            out[split][mode] = figures
    return out


def resume_folder() -> Path:
    """Where an unfinished run keeps its state between sessions: `<ferkit home>/bench/resume`."""
    from ferkit.home import ferkit_home

    return ferkit_home() / "bench" / "resume"


def run_row(name: str, config_dict: dict, data, weights: list[float], modes: tuple[str, ...] = ("flip",)) -> dict:
    """Train one run of `config_dict` on `data`'s train split; its scores on val and test.

    The training state is saved after every epoch under `resume_folder()`: a run interrupted (a
    session's end, Ctrl-C) continues from its last finished epoch when the benchmark runs again, with
    the weights an uninterrupted run ends with; its row says `resumed`, and its seconds are the last
    part's. The state is removed once the run is scored."""
    from ferkit.models import build_model
    from ferkit.training import TrainConfig, fit, seed_everything
    from ferkit.training.train import resume_path

    config = TrainConfig(**config_dict)
    train, val = data.split("train"), data.split("val")
    state = resume_path(resume_folder(), config, data, weights)
    resumed = state.is_file()
    state.parent.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    model = build_model(config.architecture, **config.architecture_kwargs)
    start = time.perf_counter()
    result = fit(
        model, train.images, train.labels, val.images, val.labels, config, class_weights=weights, checkpoint_path=state
    )
    seconds = time.perf_counter() - start
    model.load_state_dict(result.state_dict)
    row = {
        "row": name,
        "seed": config.seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": config.total_epochs,
        "best_epoch": result.best_epoch,
        **({"resumed": True} if resumed else {}),
        "train_seconds": round(seconds, 1),
        "best_val_macro_f1": round(result.best_val_macro_f1, 4),
        "scores": scores(model, data, modes),
        "machine": machine(),
    }
    state.unlink(missing_ok=True)
    return row


def trained_row(
    name: str, home: Path, config_dict: dict, data, weights: list[float], modes: tuple[str, ...], data_path: str
) -> dict | None:
    """The row of `run_row(name, config_dict, data, weights, modes)` without training it again, when
    `make train` (`make seeds`) already trained that very run in `home`; None, saying why, when not.

    The same run means what `run_row`'s resume key hashes: the training config (the champion's recorded
    recipe has `config_dict`'s fingerprint), the data (the registry's `data.fingerprint` tag, and a run
    config in `home` that adds no GAN faces) and the class weights (that run config computes `weights`
    on the data). The champion's network is then scored as `run_row` scores its own, in a child whose
    ferkit home is `home`.
    """
    import os
    import subprocess
    import tempfile

    from ferkit.training import TrainConfig

    home, data_path = home.resolve(), str(Path(data_path).resolve())
    config = TrainConfig(**config_dict)
    expected = config.fingerprint()
    labels = data.split("train").labels
    reasons = {f.name: _why_not(f, expected, weights, labels) for f in sorted(home.glob("*.yaml"))}
    configs = [file for file, why in reasons.items() if why is None]
    if not configs:
        said = "; ".join(f"{file}: {why}" for file, why in reasons.items()) or "no run config (*.yaml) there"
        print(f"{home}: not the run to score ({said}); training it", flush=True)
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "FERKIT_", "MLFLOW_"))}
    env.update(FERKIT_HOME=str(home), FERKIT_NO_PROGRESS="1")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "row.json"
        child = subprocess.run(
            [sys.executable, __file__, "--score-champion-to", str(out), "--data", data_path,
             "--expect", f"{expected},{data.fingerprint}", "--modes", ",".join(modes)],
            env=env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if child.returncode != 0 or not out.is_file():
            said = [line for line in child.stderr.splitlines() if line.strip()]
            row = {"refused": f"scoring its champion failed: {said[-1] if said else f'exit {child.returncode}'}"}
        else:
            row = json.loads(out.read_text())
    if "refused" in row:
        print(f"{home}: {row['refused']}; training it", flush=True)
        return None
    return {
        "row": name,
        "seed": config.seed,
        "parameters": row["parameters"],
        "epochs": config.total_epochs,
        "best_epoch": row["best_epoch"],
        "trained_by": f"make train in {home} ({configs[0]}); champion weights {row['weights_sha256'][:16]}",
        "best_val_macro_f1": row["best_val_macro_f1"],
        "scores": row["scores"],
        "machine": machine(),
    }


def _why_not(run_config: Path, fingerprint: str, weights: list[float], labels) -> str | None:
    """Why `run_config` (a whole pipeline config) does not train `fingerprint` on the real faces with
    `weights` (computed on the training `labels`); None when it does."""
    from ferkit.data.weights import class_weights
    from ferkit.training import TrainConfig

    try:
        steps = yaml.safe_load(run_config.read_text())["steps"]
        train, weight_params, _ = settings(run_config)
        trains = TrainConfig(**train).fingerprint()
        computes = class_weights(labels, **weight_params).as_list()
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        return f"not a run config of the training ({type(error).__name__}: {error})"
    oversample = (((steps.get("oversample_minority") or {}).get("parameters") or {}).get("config")) or {}
    if trains != fingerprint:
        return f"trains {trains}, not {fingerprint}"
    if oversample.get("enabled"):
        return "adds GAN faces to train"
    if computes != list(weights):
        return f"class weights {[round(w, 4) for w in computes]}, not {[round(w, 4) for w in weights]}"
    return None


def score_champion(out: Path, data_path: str, expect: str, modes: tuple[str, ...]) -> None:
    """(In the child, inside the trained home) the champion's row as `run_row` writes it, or why it
    is not the expected run: {"refused": reason}."""
    import hashlib

    from ferkit.data import read_fer2013
    from ferkit.registry.store import ModelNotFound, load_trained_model, version_tags

    uri = "models:/fer_emotion@champion"
    config_fingerprint, data_fingerprint = expect.split(",")
    try:
        model = load_trained_model(uri)
    except ModelNotFound as error:
        out.write_text(json.dumps({"refused": f"no champion to score ({error})"}))
        return
    tags = version_tags(uri)
    trained = hashlib.sha256(json.dumps(model.recipe, sort_keys=True).encode()).hexdigest()[:16]
    data = read_fer2013(data_path, progress=False)
    if trained != config_fingerprint:
        out.write_text(json.dumps({"refused": f"the champion trained recipe {trained}, not {config_fingerprint}"}))
        return
    if {tags.get("data.fingerprint"), data.fingerprint} != {data_fingerprint}:
        out.write_text(json.dumps({"refused": f"the champion trained on data {tags.get('data.fingerprint')}, not "
                                              f"{data_fingerprint} (the archive here is {data.fingerprint})"}))  # fmt: skip
        return
    network = model.build()
    f1 = [h.get("val.macro_f1", float("-inf")) for h in model.history]
    best = max(range(len(f1)), key=f1.__getitem__) if f1 else None
    row = {
        "parameters": sum(p.numel() for p in network.parameters()),
        "best_epoch": model.history[best]["epoch"] if best is not None else None,
        "best_val_macro_f1": round(f1[best], 4) if best is not None else None,
        "scores": scores(network, data, modes),
        "weights_sha256": tags.get("model.weights_sha256") or model.weights_sha256(),
    }
    out.write_text(json.dumps(row))


def summarise(runs: list[dict], group: str, modes: tuple[str, ...], baseline: str) -> dict:
    """Per value of `group` (a row or a variant): the mean, min and max over seeds of every figure
    on each split and mode, and the mean paired difference from `baseline` (same seeds only)."""
    out: dict = {}
    names = list(dict.fromkeys(r[group] for r in runs))
    for name in names:
        chosen = [r for r in runs if r[group] == name]
        entry: dict = {"seeds": sorted(r["seed"] for r in chosen)}
        if name != baseline:  # the differences below are over these seeds only
            entry["paired_seeds"] = sorted(
                r["seed"] for r in chosen for b in runs if b[group] == baseline and b["seed"] == r["seed"]
            )
        for split in ("val", "test"):
            for mode in modes:
                for figure in chosen[0]["scores"][split][mode]:
                    values = [r["scores"][split][mode][figure] for r in chosen]
                    entry[f"{split}.{mode}.{figure}"] = {
                        "mean": round(statistics.fmean(values), 6),
                        "min": round(min(values), 6),
                        "max": round(max(values), 6),
                    }
                    pairs = [
                        (r, b)
                        for r in chosen
                        for b in runs
                        if b[group] == baseline and b["seed"] == r["seed"] and name != baseline
                    ]
                    if pairs:
                        entry[f"{split}.{mode}.{figure}"]["minus_" + baseline] = round(
                            statistics.fmean(r["scores"][split][mode][figure] - b["scores"][split][mode][figure]
                                             for r, b in pairs),
                            6,
                        )  # fmt: skip
        out[name] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="FER2013 archive (default: $FER2013_PATH)")
    parser.add_argument("--config", default=str(ROOT / "configs/cpu.yaml"))
    parser.add_argument("--epochs", type=int, default=16, help="shared budget per run (the cpu config has 36)")
    parser.add_argument(
        "--seeds",
        default=None,
        help="comma-separated training seeds; every row runs on each (default 0,1; with --from-seeds: "
        "every seed the rows' files hold)",
    )
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {list(ROWS)}")
    parser.add_argument("--out", default=None, help="default tests/benchmarks/results/ablation-<epochs>-epochs.json")
    parser.add_argument("--write-config", metavar="ROW", help="write ROW's pipeline config to --out, train nothing")
    parser.add_argument("--from-seeds", metavar="FOLDER", help="the table from bench_seeds' FOLDER/<row>.json files")
    for child in ("--score-champion-to", "--expect", "--modes"):  # trained_row's child
        parser.add_argument(child, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.score_champion_to:
        score_champion(Path(args.score_champion_to), args.data, args.expect, tuple(args.modes.split(",")))
        return 0

    if args.write_config:
        if not args.out:
            raise SystemExit("--write-config needs --out: the file to write the row's config to")
        config = row_config(args.config, args.epochs, args.write_config)
        if args.from_seeds:
            same_kind_of_training(Path(args.from_seeds), args.write_config, config)
            table_trained_it(Path(args.from_seeds) / f"{args.write_config}.json", config)
        change = "with every part on" if args.write_config == "full" else f"without the {ROWS[args.write_config][0]}"
        text = (
            f"# The ablation's {args.write_config} row: {shown_path(args.config)} {change}, {args.epochs} epochs.\n"
            f"#   python tests/benchmarks/bench_ablation.py --epochs {args.epochs} --write-config {args.write_config} "
            f"--out {shown_path(args.out)}\n" + yaml.safe_dump(config, sort_keys=False)
        )
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        return 0

    from tqdm.auto import tqdm

    from ferkit.data import read_fer2013
    from ferkit.data.weights import class_weights

    raw, weight_params, tta = settings(args.config)
    modes = tuple(dict.fromkeys(("flip", tta)))
    base = shortened(raw, args.epochs, args.config)
    names = args.rows.split(",")
    for name in names:
        if name not in ROWS:
            raise SystemExit(f"unknown row {name!r}; expected one of {list(ROWS)}")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    if args.from_seeds:
        return gather(Path(args.from_seeds), args, names, seeds)
    seeds = seeds or [0, 1]
    data = read_fer2013(args.data, progress=False)
    weights = class_weights(data.split("train").labels, **weight_params).as_list()

    out = Path(args.out or ROOT / f"tests/benchmarks/results/ablation-{args.epochs}-epochs.json")
    table = table_key(args.config, args.epochs, modes, weight_params, base)
    runs = open_table(out, table)
    todo = [(name, seed) for name in names for seed in seeds]
    bar = tqdm(todo, desc="ablation", unit="run")
    for name, seed in bar:
        off, edit = ROWS[name]
        config_dict = {**merge(base, edit), "seed": seed}
        if any(r["row"] == name and r["seed"] == seed and same_training(r["config"], config_dict) for r in runs):
            continue  # already measured with this exact config
        bar.set_description(f"{name}, seed {seed}")
        row = {**run_row(name, config_dict, data, weights, modes), "switched_off": off, "config": config_dict}
        runs = [r for r in runs if not (r["row"] == name and r["seed"] == seed)] + [row]
        runs.sort(key=lambda r: (list(ROWS).index(r["row"]), r["seed"]))
        note = f"each run trains {args.epochs} epochs of the config (schedule compressed)"
        write_table(out, table, args, modes, runs, note, class_weights=weight_params)
    return 0


def write_table(out: Path, table: dict, args, modes: tuple[str, ...], runs: list[dict], note: str, **more) -> None:
    """The ablation's file: its runs, and each row's mean over seeds and difference from the full design."""
    results = {"table": table, "budget_epochs": args.epochs, "modes": list(modes), **more, "runs": runs}
    results["summary"] = summarise(runs, "row", modes, baseline="full")
    note += f"; PublicTest decides, PrivateTest is reported; views: {', '.join(modes)}"
    write_report("ablation", out, targets={}, checks={}, results=results, config=shown_path(args.config), note=note)


def table_trained_it(table: Path, config: dict) -> None:
    """Refuse, before its config beside it is written over, a row whose file holds another training's
    seeds (the config changed since): the table keeps naming the config that trained it."""
    from tests.benchmarks.bench_seeds import training_fingerprint

    if not table.exists():
        return
    held = json.loads(table.read_text()).get("training_sha256")
    if held and held != training_fingerprint(config):
        raise SystemExit(
            f"{shown_path(table)} holds seeds of another training (training_sha256 {held}, this row now trains "
            f"{training_fingerprint(config)}): start another table (`make ablation-full FOLDER=<another folder>`) "
            "or move the folder aside"
        )


def same_kind_of_training(folder: Path, name: str, config: dict) -> None:
    """Refuse, before any training, a row this machine would train in another precision than the
    rows already in `folder` (`auto` is bf16 on some CPUs, fp32 on others), or on another kind of
    CPU: the table could not gather it."""
    from tests.benchmarks.bench_seeds import trained_precision

    here, this = trained_precision(config), machine()
    for file in sorted(folder.glob("*.json")):
        report = json.loads(file.read_text())
        there = report.get("precision")
        if there and there != here:
            raise SystemExit(
                f"{shown_path(file)}: its seeds trained in {there}; row {name} would train in {here} on this "
                f"machine ({this.get('cpu', 'its CPU')}), and one table holds one precision: train it "
                f"where `precision: auto` resolves to {there}"
            )
        kinds = {cpu_kind(row["machine"]) for row in report.get("results", {}).get("rows", []) if row.get("machine")}
        if kinds and cpu_kind(this) not in kinds:
            raise SystemExit(
                f"{shown_path(file)}: its seeds trained on {', '.join(sorted(kinds))}; row {name} would train on "
                f"{cpu_kind(this)}, which trains another model from the same seed (its kernels round "
                "differently), and a row's difference from the full design pairs seeds: train it on that kind "
                "of CPU, or start a table for this one (`make ablation-full FOLDER=<another folder>`)"
            )


def gather(folder: Path, args: argparse.Namespace, names: list[str], seeds: list[int] | None) -> int:
    """`--from-seeds`: the table of the runs `make train` trained for each row (`bench_seeds`)."""
    runs, tta, precision = seeds_runs(folder, args.config, args.epochs, names, seeds)
    if not runs:
        which = f"seeds {seeds}" if seeds else "seeds"
        raise SystemExit(f"{shown_path(folder)}: no row's {which} trained yet")
    out = Path(args.out or ROOT / f"tests/benchmarks/results/ablation-{args.epochs}-epochs.json")
    if out.is_file() and "trained_by" not in json.loads(out.read_text()).get("results", {}).get("table", {}):
        raise SystemExit(
            f"{shown_path(out)}: holds an ablation `make ablation` trained in one process; the file is kept: "
            "give another --out (OUT=)"
        )
    table = {"config": shown_path(args.config), "budget_epochs": args.epochs, "modes": [tta], "precision": precision,
             "trained_by": f"make train, per row and seed (bench_seeds): {shown_path(folder)}"}  # fmt: skip
    note = (
        f"each run is make train of the row's config ({args.epochs} epochs) on the machine its row names; "
        "the file's machine is the one that gathered them"
    )
    write_table(out, table, args, (tta,), runs, note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
