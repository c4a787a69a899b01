"""Training throughput of configs/paper.yaml on a GPU (issue 3's target: 3,000 img/s on one H200).

    python tests/benchmarks/bench_gpu.py [--data PATH] [--epochs 2] [--batch-size 256] [--out results/gpu.json]

Trains the paper's model (hybrid ResNet50 at 224 px, bf16, channels_last, augmentation and
resize on the device) for `--epochs` passes over the training split, all parameters
trainable (the costliest phase), and reports images per second per epoch and the share of
step time spent preparing batches. Uses the real training split when FER2013 is available,
else random faces of the same shape (throughput does not depend on pixel values).
Without CUDA it exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.report import write_report  # noqa: E402

TARGETS = {"images_per_second_min": 3000.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-batches", type=int, default=None, help="cap per epoch (quick checks)")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/gpu.json"))
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device", file=sys.stderr)
        return 2
    from ferkit.data.labels import EMOTIONS
    from ferkit.models import build_model
    from ferkit.training import Phase, TrainConfig, seed_everything
    from ferkit.training.epoch import EpochSetup, make_optimizer, train_one_epoch

    raw = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())["steps"]["train_model"]["parameters"]["config"]
    raw["architecture_kwargs"]["weights"] = "none"  # throughput only; nothing to download
    raw.update(
        batch_size=args.batch_size,
        device="cuda",
        max_batches_per_epoch=args.max_batches,
        phases=[{"name": "all", "epochs": args.epochs, "lr": 1e-5}],
    )
    config = TrainConfig(**raw)
    try:
        from ferkit.data import read_fer2013

        train = read_fer2013(args.data, progress=False).split("train")
        images, labels, source = train.images, train.labels, "FER2013 train"
    except Exception as error:  # no archive on the GPU machine: same shapes, random pixels
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(28709, 48, 48), dtype=np.uint8)
        labels = rng.integers(0, len(EMOTIONS), size=28709)
        source = f"random faces ({type(error).__name__})"
    generator = seed_everything(0)
    model = build_model(config.architecture, **config.architecture_kwargs).cuda().to(memory_format=torch.channels_last)
    device_images = torch.from_numpy(images).cuda()
    repeats = np.ones(len(EMOTIONS), dtype=np.int64)
    repeats[EMOTIONS.index("disgust")] = 3
    steps = -(-int(repeats[labels].sum()) // config.batch_size)
    optimizer, scheduler = make_optimizer(
        list(model.parameters()), Phase(name="all", epochs=1, lr=1e-5), config.weight_decay, steps * args.epochs
    )
    setup = EpochSetup(model, device_images, labels, config, generator, repeats=repeats)
    epochs = []
    for epoch in range(args.epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        figures = train_one_epoch(setup, optimizer, scheduler, f"epoch {epoch + 1}")
        torch.cuda.synchronize()
        epochs.append(
            {
                "seconds": round(time.perf_counter() - start, 1),
                "images_per_second": round(figures["train.images_per_second"], 1),
                "data_wait_share": round(figures["train.data_wait_share"], 4),
            }
        )
    best = max(e["images_per_second"] for e in epochs)
    results = {
        "epochs": epochs,
        "best_images_per_second": best,
        "device": torch.cuda.get_device_name(),
        "batch_size": config.batch_size,
        "data": source,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }
    return write_report(
        "gpu",
        args.out,
        TARGETS,
        results,
        {"images_per_second": best >= TARGETS["images_per_second_min"]},
        config="configs/paper.yaml (all layers trainable, weights: none)",
    )


if __name__ == "__main__":
    sys.exit(main())
