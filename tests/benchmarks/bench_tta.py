"""Test-time augmentation modes compared on PublicTest (where a mode is chosen) and PrivateTest.

    python tests/benchmarks/bench_tta.py --model models:/fer_emotion/4 [--model PATH ...] [--data PATH]
        [--out tests/benchmarks/results/tta.json]

Every mode of `ferkit.models.predict.TTA_MODES` scores each model on both
splits at the recipe's precision; the views the modes share run once. A mode is
chosen on PublicTest only: PrivateTest figures are reported, never used to pick.
Models already in the JSON with the same source are kept; a new `--model`
adds its rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.report import write_report  # noqa: E402 (after the sys.path line)


def score_model(uri: str, data) -> dict:
    from ferkit.metrics.classification import classification_metrics
    from ferkit.models.predict import TTA_MODES, predict_proba_modes
    from ferkit.registry.store import load_trained_model

    trained = load_trained_model(uri)
    network = trained.build()
    bf16 = trained.recipe.get("precision") == "bf16"
    row = {"model": uri, "architecture": trained.architecture, "precision": "bf16" if bf16 else "fp32", "modes": {}}
    start = time.perf_counter()
    for split, name in (("val", "PublicTest"), ("test", "PrivateTest")):
        subset = data.split(split)
        for mode, probs in predict_proba_modes(network, subset.images, TTA_MODES, bf16=bf16).items():
            figures = classification_metrics(subset.labels, probs)
            row["modes"].setdefault(mode, {})[name] = {k: round(float(v), 4) for k, v in figures.items()}
    row["seconds"] = round(time.perf_counter() - start, 1)
    # Chosen on PublicTest: the best macro-F1 there (the pipeline's gate metric).
    row["best_on_publictest"] = max(row["modes"], key=lambda m: row["modes"][m]["PublicTest"]["macro_f1"])
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="checkpoint file or models:/ URI; repeatable")
    parser.add_argument("--data", default=None, help="FER2013 archive (default: $FER2013_PATH)")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/tta.json"))
    args = parser.parse_args()

    from ferkit.data import read_fer2013

    data = read_fer2013(args.data, progress=False)
    out = Path(args.out)
    rows = json.loads(out.read_text())["results"]["models"] if out.is_file() else []
    for uri in args.model:
        print(f"== {uri}", flush=True)
        rows = [r for r in rows if r["model"] != uri] + [score_model(uri, data)]
    return write_report(
        "tta",
        out,
        targets={},
        results={"models": rows},
        checks={},
        note="each mode on PublicTest (choice) and PrivateTest (report); views: ferkit.models.predict",
    )


if __name__ == "__main__":
    sys.exit(main())
