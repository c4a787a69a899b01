"""Inference benchmark: batch throughput on pre-cropped 48x48 faces, and `ferkit predict` cold start.

    python tests/benchmarks/bench_inference.py --model models:/fer_emotion@champion [--data PATH]

Throughput is measured on the FER2013 test split (PrivateTest) without TTA, as
fp32, fp32 channels_last, and int8 (FX static quantization, x86 backend,
calibrated on 4,096 training images), each with its accuracy so the cost of
going faster is visible. Targets (issue 6): 1,500 images/s with at most 0.5
points of accuracy lost; `ferkit predict` on one image, cold, at most 3 s.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"images_per_second": 1500.0, "max_accuracy_drop_points": 0.5, "predict_cold_start_seconds": 3.0}


def throughput(
    model: torch.nn.Module, images: np.ndarray, batch_size: int = 512, repeats: int = 3, channels_last: bool = False
) -> float:
    """Best of `repeats` passes over `images`, in images per second."""
    x_all = torch.from_numpy(images).unsqueeze(1).float().div_(255)
    if channels_last:
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    best = 0.0
    with torch.inference_mode():
        model(x_all[:batch_size])  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(x_all), batch_size):
                model(x_all[i : i + batch_size])
            best = max(best, len(x_all) / (time.perf_counter() - start))
    return best


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    with torch.inference_mode():
        logits = torch.cat(
            [
                model(torch.from_numpy(images[i : i + 512]).unsqueeze(1).float() / 255)
                for i in range(0, len(images), 512)
            ]
        )
    return float((logits.argmax(1).numpy() == labels).mean())


def predict_cold_start(model_arg: str, image: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "ferkit"), "predict", str(image), "--model", model_arg],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/fer_emotion@champion", help="checkpoint file or models:/ URI")
    parser.add_argument("--data", default=os.environ.get("FER2013_PATH"), help="archive (default $FER2013_PATH)")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/inference.json"))
    args = parser.parse_args()
    os.environ.setdefault("ZENML_CONFIG_PATH", str(ROOT / ".ferkit/zenml"))
    sys.path.insert(0, str(ROOT))

    from PIL import Image
    from skimage import data as skdata

    from ferkit.data import read_fer2013
    from ferkit.models.quantize import quantize_int8
    from ferkit.registry.store import load_trained_model
    from tests.benchmarks.report import write_report

    trained = load_trained_model(args.model)
    data = read_fer2013(args.data, progress=False)
    test, train = data.split("test"), data.split("train")
    fp32 = trained.build()
    int8 = quantize_int8(fp32, train.images[np.random.default_rng(0).choice(len(train), 4096, replace=False)])
    fp32_cl = copy.deepcopy(fp32).to(memory_format=torch.channels_last)

    results = {"threads": torch.get_num_threads(), "test_images": len(test)}
    for name, model, cl in (("fp32", fp32, False), ("fp32_channels_last", fp32_cl, True), ("int8", int8, False)):
        results[name] = {
            "images_per_second": round(throughput(model, test.images, channels_last=cl), 1),
            "accuracy": round(accuracy(model, test.images, test.labels), 4),
        }
    best = max(("fp32", "fp32_channels_last", "int8"), key=lambda k: results[k]["images_per_second"])
    drop = (results["fp32"]["accuracy"] - results[best]["accuracy"]) * 100
    image = Path("/tmp/ferkit_bench_astronaut.png")
    Image.fromarray(skdata.astronaut()).save(image)
    results["fastest"] = best
    results["accuracy_drop_points"] = round(drop, 2)
    results["predict_cold_start_seconds"] = round(predict_cold_start(args.model, image), 2)
    checks = {
        "images_per_second": results[best]["images_per_second"] >= TARGETS["images_per_second"],
        "max_accuracy_drop_points": drop <= TARGETS["max_accuracy_drop_points"],
        "predict_cold_start_seconds": results["predict_cold_start_seconds"] <= TARGETS["predict_cold_start_seconds"],
    }
    return write_report(
        "inference",
        args.out,
        TARGETS,
        results,
        checks,
        model=args.model,
        architecture=trained.architecture,
        torch=torch.__version__,
    )


if __name__ == "__main__":
    sys.exit(main())
