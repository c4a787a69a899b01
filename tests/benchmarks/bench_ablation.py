"""Ablation of the hybrid design: the cpu config with each part switched off in turn.

    python tests/benchmarks/bench_ablation.py [--data PATH] [--epochs 5] [--rows full,no_attention,...]
        [--out tests/benchmarks/results/ablation.json]

Every row trains from the same seed with the same shortened budget (the cpu
config's phase shortened to `--epochs`, its one-cycle schedule compressed to
match), picks its checkpoint on PublicTest and is scored once on PrivateTest
with the config's flip test-time augmentation. Rows are independent: a crashed
or interrupted benchmark keeps the rows already written to the JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.report import write_report  # noqa: E402

# name -> (what is switched off, edit of the train config)
ROWS = {
    "full": ("nothing (the cpu config with every hybrid part on)", {}),
    "no_attention": ("SE + spatial attention", {"architecture_kwargs": {"attention": False}}),
    "no_transformer": ("transformer block", {"architecture_kwargs": {"transformer": False}}),
    "no_branches": ("class-group branches (one dense head)", {"architecture_kwargs": {"branches": False}}),
    "no_class_weights": ("inverse-frequency class weights", {"use_class_weights": False}),
    "no_class_balanced_augmentation": ("3 augmented copies of disgust", {"class_repeats": {}}),
}


def merge(base: dict, edit: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in edit.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) and value else value
    return out


def run_row(name: str, config_dict: dict, data, weights: list[float]) -> dict:
    from ferkit.metrics.classification import classification_metrics
    from ferkit.models import build_model
    from ferkit.training import TrainConfig, fit, predict_proba, seed_everything

    config = TrainConfig(**config_dict)
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    seed_everything(config.seed)
    model = build_model(config.architecture, **config.architecture_kwargs)
    start = time.perf_counter()
    result = fit(model, train.images, train.labels, val.images, val.labels, config, class_weights=weights)
    seconds = time.perf_counter() - start
    model.load_state_dict(result.state_dict)
    probs = predict_proba(model, test.images, tta_flip=config.tta_flip)
    figures = classification_metrics(test.labels, probs)
    from sklearn.metrics import f1_score, recall_score

    predicted = probs.argmax(1)
    disgust = 1
    return {
        "row": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": config.total_epochs,
        "best_epoch": result.best_epoch,
        "train_seconds": round(seconds, 1),
        "test": {k: round(float(v), 4) for k, v in figures.items()},
        "test_disgust_recall": round(float(recall_score(test.labels == disgust, predicted == disgust)), 4),
        "test_disgust_f1": round(float(f1_score(test.labels == disgust, predicted == disgust)), 4),
        "best_val_macro_f1": round(result.best_val_macro_f1, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="FER2013 archive (default: $FER2013_PATH)")
    parser.add_argument("--config", default=str(ROOT / "configs/cpu.yaml"))
    parser.add_argument("--epochs", type=int, default=5, help="shared budget per row (the cpu config has 36)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {list(ROWS)}")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/ablation.json"))
    args = parser.parse_args()

    from ferkit.data import read_fer2013
    from ferkit.data.labels import EMOTIONS
    from ferkit.data.weights import class_weights

    raw = yaml.safe_load(Path(args.config).read_text())["steps"]["train_model"]["parameters"]["config"]
    base = copy.deepcopy(raw)
    if len(base.get("phases", [])) != 1:
        raise SystemExit(f"{args.config}: the ablation shortens a single-phase config")
    base["phases"][0]["epochs"] = args.epochs
    # Each part is measured against the full design, whichever parts the config itself switches off.
    base.setdefault("architecture_kwargs", {}).update(attention=True, transformer=True, branches=True)
    data = read_fer2013(args.data, progress=False)
    weights = class_weights(data.split("train").labels, "inverse_frequency").as_list()
    assert EMOTIONS[1] == "disgust"

    out = Path(args.out)
    done = {r["row"]: r for r in json.loads(out.read_text())["results"]["rows"]} if out.is_file() else {}
    rows = list(done.values())  # rows measured before (another --rows subset) stay in the table
    for name in args.rows.split(","):
        if name not in ROWS:
            raise SystemExit(f"unknown row {name!r}; expected one of {list(ROWS)}")
        off, edit = ROWS[name]
        config_dict = merge(base, edit)
        if name in done and done[name].get("config") == config_dict:
            continue  # already measured with this exact config
        print(f"== {name}: switched off {off}", flush=True)
        row = {**run_row(name, config_dict, data, weights), "switched_off": off, "config": config_dict}
        rows = [r for r in rows if r["row"] != name] + [row]
        rows.sort(key=lambda r: list(ROWS).index(r["row"]))
        full = next((r for r in rows if r["row"] == "full"), None)
        write_report(
            "ablation",
            out,
            targets={},
            results={"budget_epochs": args.epochs, "rows": rows},
            checks={},
            config=str(Path(args.config).relative_to(ROOT)),
            note=f"each row trains {args.epochs} of the cpu config's epochs from seed {config_dict.get('seed', 0)}",
        )
        if full is not None:
            delta = {k: round(row["test"][k] - full["test"][k], 4) for k in row["test"]}
            print(f"   {name}: {row['test']} (vs full {delta})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
