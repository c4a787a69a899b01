"""Training throughput of the cpu model and the share of step time spent waiting on data.

    python tests/benchmarks/bench_training.py [--data PATH] [--batches 40] [--out results/training.json]

Runs `train_one_epoch` (the loop the pipeline uses) over the first `--batches`
batches of the real training split: first the cpu config as written with glibc's
allocator left as it is (before `keep_freed_memory` applies, for the rest of the
process), then the config as written (`precision: auto` resolved for this CPU), in
fp32 with channels_last, in fp32 without, in forced bf16 (emulated on a CPU without
AVX512-BF16 or AMX), the plain CNN baseline, and the config on faces resized to
smaller sides (`--sizes`: what progressive resizing's early epochs cost), all in one
run so the ratios are comparable on a noisy shared machine; last, the config as written
once more under the profiler (`cpu_config_profiled`: the share of its steps' operator
time that convolutions, batch norm, dropout masks, matrix products and the rest take).
"Data wait" is the time each step spends indexing, converting and augmenting its batch;
the target is under 10% of step time.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.report import write_report  # noqa: E402

TARGETS = {"data_wait_share_max": 0.10}


def measure(
    config_dict: dict,
    images: np.ndarray,
    labels: np.ndarray,
    batches: int,
    size: int | None = None,
    profile: bool = False,
) -> dict:
    from ferkit.training import TrainConfig
    from ferkit.training.speed import training_throughput

    figures = training_throughput(TrainConfig(**config_dict), images, labels, batches, size=size, profile=profile)
    return {
        **figures,
        "images_per_second": round(figures["images_per_second"], 1),
        "data_wait_share": round(figures["data_wait_share"], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="FER2013 archive (default: $FER2013_PATH)")
    parser.add_argument("--config", default=str(ROOT / "configs/cpu.yaml"))
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument(
        "--sizes", default="40,36,32", help="smaller sides to train the config at (progressive resizing)"
    )
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/training.json"))
    args = parser.parse_args()

    from ferkit.data import read_fer2013
    from ferkit.runtime import CPU_AMX_FLAGS, CPU_BF16_FLAGS, KEEP_FREED_MEMORY_ENV, cpu_flags

    cpu = yaml.safe_load(Path(args.config).read_text())["steps"]["train_model"]["parameters"]["config"]
    train = read_fer2013(args.data, progress=False).split("train")
    # First, before anything sets glibc to keep freed memory (the setting lasts for the process).
    asked = os.environ.get(KEEP_FREED_MEMORY_ENV)
    os.environ[KEEP_FREED_MEMORY_ENV] = "0"
    default_allocator = measure(cpu, train.images, train.labels, args.batches)
    os.environ.pop(KEEP_FREED_MEMORY_ENV)
    if asked is not None:
        os.environ[KEEP_FREED_MEMORY_ENV] = asked
    variants = {
        "cpu_config": cpu,
        "cpu_config_fp32": {**copy.deepcopy(cpu), "precision": "fp32"},
        "cpu_config_fp32_nchw": {**copy.deepcopy(cpu), "precision": "fp32", "channels_last": False},
        "cpu_config_forced_bf16": {**copy.deepcopy(cpu), "precision": "bf16"},
        "plain_cnn": {**copy.deepcopy(cpu), "architecture": "plain_cnn", "architecture_kwargs": {}},
    }
    results = {name: measure(c, train.images, train.labels, args.batches) for name, c in variants.items()}
    sizes = [int(side) for side in args.sizes.split(",") if side]
    for side in sizes:
        results[f"cpu_config_at_{side}px"] = measure(cpu, train.images, train.labels, args.batches, size=side)
    results["cpu_config_default_allocator"] = default_allocator
    results["cpu_config_profiled"] = measure(cpu, train.images, train.labels, args.batches, profile=True)
    speed = {name: row["images_per_second"] for name, row in results.items()}
    results["kept_memory_speedup_over_default_allocator"] = round(
        speed["cpu_config"] / speed["cpu_config_default_allocator"], 2
    )
    results["cpu_config_speedup_over_fp32"] = round(speed["cpu_config"] / speed["cpu_config_fp32"], 2)
    results["speedup_over_fp32_nchw"] = round(speed["cpu_config"] / speed["cpu_config_fp32_nchw"], 2)
    results["forced_bf16_speedup_over_fp32_nchw"] = round(
        speed["cpu_config_forced_bf16"] / speed["cpu_config_fp32_nchw"], 2
    )
    for side in sizes:
        results[f"speedup_at_{side}px"] = round(speed[f"cpu_config_at_{side}px"] / speed["cpu_config"], 2)
    epoch_images = len(train) + 2 * int((train.labels == 1).sum())  # the config's 3 copies of disgust
    results["cpu_config_epoch_seconds_estimate"] = round(epoch_images / results["cpu_config"]["images_per_second"], 1)
    checks = {"data_wait_share": results["cpu_config"]["data_wait_share"] <= TARGETS["data_wait_share_max"]}
    return write_report(
        "training",
        args.out,
        TARGETS,
        results,
        checks,
        batches=args.batches,
        config=str(Path(args.config).relative_to(ROOT)),
        native_bf16=bool(cpu_flags() & CPU_BF16_FLAGS),  # AVX512-BF16 or AMX; `auto` takes bf16 with AMX or on AMD
        amx=bool(cpu_flags() & CPU_AMX_FLAGS),
    )


if __name__ == "__main__":
    sys.exit(main())
