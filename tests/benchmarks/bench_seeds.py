"""The headline across training seeds: a config trained as `make train` trains it, once per seed,
each scored on PublicTest and PrivateTest; the mean, the spread and every seed.

    python tests/benchmarks/bench_seeds.py [--config configs/cpu.yaml] [--seeds 0,1,2] [--tta MODE]
        [--root .ferkit/seeds] [--out tests/benchmarks/results/seeds_<MODE>.json]
    make seeds                      # the same, for cpu.yaml and seeds 0, 1 and 2 (about 3 hours on
                                    # 2 native-bf16 cores); `nohup make seeds > seeds.log &` for the background

Each seed gets its own home (`<root>/seed<N>`: its ZenML and MLflow state, its resume state),
its own copy of the config with `train_model`'s seed set, and a fresh `make train FRESH=1`, timed
from the shell (set-up of that home included). Its champion is then scored with `ferkit evaluate`
on val (PublicTest) and test (PrivateTest) with the config's headline TTA (or --tta MODE), into
`seeds_<MODE>.json`: a file holds one mode. A seed already in the output file for the same training
(the config without its scoring steps, `evaluate_model`, `report_drift` and `register_model`,
which change no weight, and without its `deadline`, which only says when a slow day stops) is not
trained again; a file holding another training's seeds is refused and kept. A seed whose deadline
or time budget ended its training early says where (`cut_at_epoch`). A seed whose training was interrupted
(its home keeps a resume state of the same training config) continues from its last finished
epoch with `make train` (no FRESH); its row says `resumed` and its minutes are those of the last
part only, so they stay out of the time summary. A seed that starts from scratch gets an empty
home: what an earlier run left there is moved aside (`seed<N>.<time>`), so the champion scored is
this seed's model. A failed seed is recorded with its log and the
others go on. Progress: one bar over the seeds, with the training's own progress line beside it.

`--score-only --tta MODE` trains nothing: it scores the model each seed's home already holds with
another TTA mode, into that mode's file, so the TTA mode can be chosen on PublicTest over the seeds.
A home without a trained model is an error row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.report import cpu_kind, machine, write_report  # noqa: E402

FIGURES = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")
# Steps that score, report or register the trained model: none changes what a seed trains.
SCORING_STEPS = ("evaluate_model", "report_drift", "register_model")


def training_fingerprint(config: dict) -> str:
    """What a seed trains, hashed: the run config without its scoring steps (a new TTA mode or gate
    metric scores the same weights, so the seeds already trained stand), and without what shapes no
    epoch (`without_inert`)."""
    trains = json.loads(json.dumps(config))
    for step in SCORING_STEPS:
        (trains.get("steps") or {}).pop(step, None)
    parameters = ((trains.get("steps") or {}).get("train_model") or {}).get("parameters") or {}
    if isinstance(parameters.get("config"), dict):
        parameters["config"] = without_inert(parameters["config"])
    return hashlib.sha256(json.dumps(trains, sort_keys=True).encode()).hexdigest()[:16]


def without_inert(train: dict) -> dict:
    """A train config less what shapes nothing: a `short_budget` with no time budget to apply it
    (the recipe trained is the same with or without it), and a `deadline`, which says when a slow
    day stops the schedule, not what its epochs train (a row cut by it says so: `cut_at_epoch`)."""
    inert = {"deadline"} | ({"short_budget"} if train.get("time_budget_minutes") is None else set())
    return {key: value for key, value in train.items() if key not in inert}


CUT = re.compile(r"(deadline|time budget): training ends after epoch (\d+) of (\d+)")


def cut_at(log: Path) -> dict:
    """Where a deadline or time budget ended the seed's training early, from its log; {} when every
    epoch trained."""
    found = CUT.findall(log.read_text(errors="replace")) if log.is_file() else []
    return {"cut_at_epoch": int(found[-1][1]), "of_epochs": int(found[-1][2]), "cut_by": found[-1][0]} if found else {}


def trained_precision(config: dict) -> str:
    """The precision the config's training resolves to on this machine (`auto` is bf16 on some CPUs
    and fp32 on others): seeds trained at one are not seeds of the other, as with another seed."""
    from ferkit.training import TrainConfig

    return TrainConfig(**config["steps"]["train_model"]["parameters"]["config"]).concrete_precision


def seed_config(config: dict, seed: int) -> dict:
    """`config` with the training seed set to `seed` (the GAN's seed is left as written)."""
    out = json.loads(json.dumps(config))
    out["steps"]["train_model"]["parameters"]["config"]["seed"] = seed
    return out


def last_progress(log: Path) -> str:
    """The last progress line of a training log (tqdm writes carriage returns)."""
    try:
        tail = log.read_bytes()[-4000:].decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [p.strip() for p in tail.replace("\r", "\n").splitlines() if p.strip()]
    return parts[-1][:90] if parts else ""


def resume_states(home: Path, seeded: dict) -> list[Path]:
    """The resume states in `home` of the training `seeded` (a whole run config) configures: what an
    interrupted `make train` of it left (the states of other training configs do not count)."""
    from ferkit.training.config import TrainConfig

    parameters = seeded["steps"]["train_model"]["parameters"]
    folder = Path(parameters.get("resume_dir") or home / "resume")
    return sorted(folder.glob(f"train-{TrainConfig(**parameters['config']).fingerprint()}-*.pt"))


def prepare_home(root: Path, seed: int, seeded: dict) -> tuple[Path, bool, Path | None]:
    """The home of `seed` under `root`: (home, resume, where an earlier run's home went).

    With a resume state of this training the home is kept and the run continues. Otherwise the
    seed starts as on a fresh machine, in an empty home: a home holding anything else (another
    config's run, whose champion the gate would weigh this seed's model against) is moved aside
    to `seed<N>.<time>`, never deleted.
    """
    home = root / f"seed{seed}"
    if resume_states(home, seeded):
        return home, True, None
    moved = None
    if home.exists() and any(home.iterdir()):
        moved = root / f"{home.name}.{time.strftime('%Y%m%d-%H%M%S')}"
        home.rename(moved)
    home.mkdir(parents=True, exist_ok=True)
    return home, False, moved


def train_command(config_path: Path, home: Path, resume: bool) -> list[str]:
    """`make train` of `config_path` in `home`: from scratch (FRESH=1), or on from its resume state."""
    return ["make", "train", f"CONFIG={config_path}", f"FERKIT_HOME={home}", *([] if resume else ["FRESH=1"])]


def train_seed(config_path: Path, home: Path, log: Path, bar, resume: bool = False) -> tuple[int, float]:
    """`make train` in `home` (FRESH=1 unless `resume`); returns (exit code, minutes), updating the bar
    while it runs. A resumed run appends to `log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "FERKIT_", "MLFLOW_"))}
    env["FERKIT_NO_PROGRESS"] = "0"
    start = time.perf_counter()
    with log.open("ab" if resume else "wb") as out:
        process = subprocess.Popen(
            train_command(config_path, home, resume), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        done = threading.Event()

        def watch() -> None:
            while not done.wait(10):
                bar.set_postfix_str(f"{(time.perf_counter() - start) / 60:.0f} min | {last_progress(log)}")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = process.wait()
        done.set()
    return code, (time.perf_counter() - start) / 60


def data_path(config: dict) -> str:
    """The data the config trains on: its `data_path`, else $FER2013_PATH, else the Makefile's default."""
    given = (config.get("parameters") or {}).get("data_path") or os.environ.get("FER2013_PATH")
    return str(given or (ROOT.parent / "shared/data/fer2013.zip"))


def score(home: Path, data: str, split: str, tta: str) -> dict:
    """`ferkit evaluate --json` of the champion in `home` on `split` of `data`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "FERKIT_", "MLFLOW_"))}
    env.update(FERKIT_HOME=str(home), FERKIT_NO_PROGRESS="1")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ferkit"), "evaluate", "--model", "models:/fer_emotion@champion",
         "--data", data, "--split", split, "--tta", tta, "--json", "--bootstrap", "200"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)
    metrics = report["metrics"]
    return {
        **{k: round(metrics[k], 6) for k in FIGURES},
        "recall": {row["emotion"]: round(row["recall"], 6) for row in report["per_class"]},
        "leakage_free": {k: round(metrics[f"leakage_free.{k}"], 6) for k in FIGURES if f"leakage_free.{k}" in metrics},
    }


def score_trained(home: Path, data: str, tta: str) -> dict:
    """The row of a seed scored without training: the model its home already holds, on val and test;
    an `error` that names the home when there is none to score."""
    if not home.is_dir():
        return {"error": f"{home} does not exist: train the seed first (without --score-only)"}
    try:
        return {split: score(home, data, split, tta) for split in ("val", "test")}
    except subprocess.CalledProcessError as error:
        said = [line for line in (error.stderr or "").splitlines() if line.strip()]
        return {"error": f"no model scored in {home}: {said[-1] if said else f'exit {error.returncode}'}"}


def trained_on(rows: list[dict]) -> list[str]:
    """The kinds of CPU the rows' seeds trained on (a row scored only names none)."""
    return sorted({cpu_kind(r["machine"]) for r in rows if r.get("machine") and not r.get("scored_only")})


def another_kind(seed: int, kinds: list[str]) -> str:
    """What a seed trained on another kind of CPU than the file's other seeds means for the table."""
    return (
        f"seed {seed} trains on {cpu_kind(machine())}; the file's other seeds trained on {'; '.join(kinds)}. "
        "Another kind of CPU rounds differently and trains another model from the same seed, so the "
        "spread over these seeds holds that difference too (the file lists its kinds of CPU); "
        "give another --out to keep a table of one kind"
    )


def summary(rows: list[dict], split: str) -> dict:
    """Mean, sample standard deviation, min and max of each figure (and each recall) over the seeds."""
    done = [r for r in rows if split in r]
    out: dict = {"seeds": [r["seed"] for r in done]}
    if not done:
        return out
    series = {k: [r[split][k] for r in done] for k in FIGURES}
    series |= {f"recall.{e}": [r[split]["recall"][e] for r in done] for e in done[0][split]["recall"]}
    for name, values in series.items():
        out[name] = {
            "mean": round(statistics.fmean(values), 6),
            "std": round(statistics.stdev(values), 6) if len(values) > 1 else 0.0,
            "min": round(min(values), 6),
            "max": round(max(values), 6),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/cpu.yaml")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tta", default=None, help="headline TTA (default: the config's evaluate_model tta)")
    parser.add_argument("--root", default=str(ROOT / ".ferkit/seeds"), help="one home per seed under here")
    parser.add_argument("--out", default=None, help="default tests/benchmarks/results/seeds_<tta>.json")
    parser.add_argument(
        "--score-only", action="store_true", help="train nothing: score each seed's trained model with --tta"
    )
    args = parser.parse_args()

    from tqdm.auto import tqdm

    config_file = (ROOT / args.config).resolve() if not Path(args.config).is_absolute() else Path(args.config)
    config = yaml.safe_load(config_file.read_text())
    # A config of this repository is named from its root, so the table says what to run on any checkout.
    named = str(config_file.relative_to(ROOT)) if config_file.is_relative_to(ROOT) else str(config_file)
    tta = args.tta or config["steps"].get("evaluate_model", {}).get("parameters", {}).get("tta", "flip")
    fingerprint = training_fingerprint(config)
    out = Path(args.out or ROOT / f"tests/benchmarks/results/seeds_{tta}.json")
    previous = json.loads(out.read_text()) if out.exists() else {}
    if previous.get("results", {}).get("rows") and previous["results"].get("tta", tta) != tta:
        print(
            f"bench_seeds: {out} holds seeds scored with --tta {previous['results']['tta']}, not {tta}; "
            "give another --out",
            file=sys.stderr,
        )
        return 2
    if previous.get("results", {}).get("rows") and previous.get("training_sha256") != fingerprint:
        print(
            f"bench_seeds: {out} holds seeds of another training (training_sha256 "
            f"{previous.get('training_sha256', 'not recorded')}; {args.config} trains {fingerprint}); "
            "give another --out, or move the file aside to train the seeds again",
            file=sys.stderr,
        )
        return 2
    # Scoring trains nothing, so the file keeps the precision its seeds were trained at.
    precision = previous.get("precision") if args.score_only else trained_precision(config)
    if previous.get("results", {}).get("rows") and previous.get("precision") != precision:
        print(
            f"bench_seeds: {out} holds seeds trained in {previous.get('precision') or 'a precision not recorded'}; "
            f"{args.config} trains in {precision} on this machine ({machine().get('cpu', 'its CPU')}); "
            "give another --out to train them here",
            file=sys.stderr,
        )
        return 2
    rows = list(previous.get("results", {}).get("rows", []))
    seeds = [int(s) for s in args.seeds.split(",")]
    root = Path(args.root).resolve()

    def save() -> None:
        results = {"rows": rows, "val": summary(rows, "val"), "test": summary(rows, "test"), "tta": tta}
        minutes = [r["minutes"] for r in rows if "minutes" in r]
        results["minutes"] = (
            {"mean": round(statistics.fmean(minutes), 1), "max": round(max(minutes), 1)} if minutes else {}
        )
        results["kinds_of_cpu"] = trained_on(rows)
        recorded = {"precision": precision} if precision else {}  # scored only, from a file without one: unknown
        write_report("seeds", out, {}, results, {}, config=named, training_sha256=fingerprint, **recorded)

    bar = tqdm(seeds, desc="seeds", unit="seed")
    for seed in bar:
        if any(r["seed"] == seed and "test" in r for r in rows):
            continue
        if args.score_only:
            bar.set_description(f"seed {seed} (scoring)")
            home = root / f"seed{seed}"
            row = {"seed": seed, "machine": machine(), "scored_only": True, "home": str(home)}
            rows[:] = [r for r in rows if r["seed"] != seed] + [row | score_trained(home, data_path(config), tta)]
            save()
            continue
        elsewhere = trained_on([r for r in rows if r["seed"] != seed])
        if elsewhere and cpu_kind(machine()) not in elsewhere:
            tqdm.write(another_kind(seed, elsewhere))
        home, resume, moved = prepare_home(root, seed, seed_config(config, seed))
        if moved:
            tqdm.write(f"seed {seed}: {home} held another run; moved to {moved}, this seed starts from scratch")
        seeded = home / f"{config_file.stem}_seed{seed}.yaml"
        seeded.write_text(yaml.safe_dump(seed_config(config, seed), sort_keys=False))
        bar.set_description(f"seed {seed}" + (" (resumed)" if resume else ""))
        code, minutes = train_seed(seeded, home, home / "train.log", bar, resume=resume)
        # Seeds may run in different sessions on different machines: each row says where it ran.
        row: dict = {"seed": seed, "machine": machine(), "precision": precision, "log": str(home / "train.log")}
        row |= (
            {"resumed": True, "minutes_after_resume": round(minutes, 1)} if resume else {"minutes": round(minutes, 1)}
        )
        if code != 0:
            row["error"] = f"make train exited {code}; see the log"
        else:
            row |= cut_at(home / "train.log")
            row |= {split: score(home, data_path(config), split, tta) for split in ("val", "test")}
        rows[:] = [r for r in rows if r["seed"] != seed] + [row]
        save()
    save()
    return 0 if all("test" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
