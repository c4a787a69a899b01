"""Inference speed: faces per second of a predict function over a batch of faces."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

BATCH = 512  # faces per call, as batch inference sends them


def best_rate(
    predict: Callable[[np.ndarray], object], images: np.ndarray, repeats: int = 3, batch: int = BATCH
) -> float:
    """Best of `repeats` passes over `images` (N, 48, 48) in batches, in faces per second (one warm-up
    batch first; the best pass is the least disturbed by whatever else runs on the machine)."""
    predict(images[:batch])
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            predict(images[i : i + batch])
        best = max(best, len(images) / (time.perf_counter() - start))
    return best


def torch_faces_per_second(network, images: np.ndarray, repeats: int = 3) -> float:
    """fp32 faces per second of a torch model in eval mode (no TTA: one view per face)."""
    import torch

    network.eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(batch).unsqueeze(1).float().div_(255)).softmax(1).numpy()

    return best_rate(predict, images, repeats)
