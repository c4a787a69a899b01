"""Batched prediction with test-time augmentation: plain torch, no metrics or pandas, so
inference starts fast."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.data.labels import EMOTIONS


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, 48, 48) -> float (B, 1, 48, 48) in [0, 1]."""
    x = torch.as_tensor(images)
    return x.unsqueeze(1).float().div_(255.0)


TTA_MODES = ("none", "flip", "ten_crop")


def _views(x: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The batch as the model should see it under a test-time-augmentation mode."""
    if tta == "none":
        return [x]
    if tta == "flip":
        return [x, x.flip(dims=[3])]
    if tta == "ten_crop":
        # Four corners and the centre at 7/8 of the side, resized back, plus their mirrors.
        size = x.shape[-1]
        crop = round(size * 7 / 8)
        offsets = [(0, 0), (0, size - crop), (size - crop, 0), (size - crop, size - crop)]
        offsets.append(((size - crop) // 2, (size - crop) // 2))
        crops = [
            F.interpolate(x[..., i : i + crop, j : j + crop], size=(size, size), mode="bilinear", align_corners=False)
            for i, j in offsets
        ]
        return crops + [c.flip(dims=[3]) for c in crops]
    raise ValueError(f"unknown tta {tta!r}; expected one of {TTA_MODES}")


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int = 512,
    tta_flip: bool = False,
    tta: str | None = None,
    bf16: bool = False,
) -> np.ndarray:
    """Softmax probabilities (N, 7) for uint8 images (N, 48, 48), averaged over the TTA views.

    `tta` is "none", "flip" or "ten_crop"; `tta_flip=True` is shorthand for "flip".
    Batches go to the model's device; `bf16` runs the forward pass under bfloat16 autocast.
    """
    mode = tta or ("flip" if tta_flip else "none")
    model.eval()
    first = next(model.parameters(), None)  # int8 graph modules keep packed weights, no parameters
    device = first.device if first is not None else torch.device("cpu")
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size]).to(device)  # (B, 1, 48, 48)
        views = _views(x, mode)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            probs = sum(model(v).float().softmax(dim=1) for v in views) / len(views)
        out.append(probs.cpu())
    if not out:
        return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
    return torch.cat(out).numpy()
