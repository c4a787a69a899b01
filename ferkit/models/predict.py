"""Batched prediction with test-time augmentation: plain torch, no metrics or pandas, so
inference starts fast."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.data.labels import EMOTIONS
from ferkit.models.views import CROPS as _CROPS
from ferkit.models.views import MODE_GROUPS as _MODE_GROUPS
from ferkit.models.views import TTA_MODES
from ferkit.stopping import raise_if_stop_requested


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, 48, 48) -> float (B, 1, 48, 48) in [0, 1]."""
    x = torch.as_tensor(images)
    return x.unsqueeze(1).float().div_(255.0)


# affine_grid samples the input at the moved position: content moves the other way.
_SHIFT_XY = {"shift_right": (-0.1, 0.0), "shift_left": (0.1, 0.0), "shift_down": (0.0, -0.1), "shift_up": (0.0, 0.1)}


def _check_mode(tta: str) -> None:
    if tta not in _MODE_GROUPS:
        raise ValueError(f"unknown tta {tta!r}; expected one of {TTA_MODES}")


def _view(x: torch.Tensor, name: str) -> torch.Tensor:
    """One named view of a (B, 1, H, W) batch."""
    if name.endswith("_mirror"):
        return _view(x, name.removesuffix("_mirror")).flip(dims=[3])
    if name == "full":
        return x
    size = x.shape[-1]
    if name in _CROPS:
        crop = round(size * 7 / 8)
        far, mid = size - crop, (size - crop) // 2
        i, j = {
            "crop_tl": (0, 0),
            "crop_tr": (0, far),
            "crop_bl": (far, 0),
            "crop_br": (far, far),
            "crop_c": (mid, mid),
        }[name]
        return F.interpolate(
            x[..., i : i + crop, j : j + crop], size=(size, size), mode="bilinear", align_corners=False
        )
    if name in _SHIFT_XY:
        dx, dy = _SHIFT_XY[name]  # affine_grid's [-1, 1] coordinates: 0.1 is 5% of the side
        theta = torch.tensor([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    raise ValueError(f"unknown view {name!r}")


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

    `tta` is one of TTA_MODES; `tta_flip=True` is shorthand for "flip".
    Batches go to the model's device; `bf16` runs the forward pass under bfloat16 autocast.
    """
    mode = tta or ("flip" if tta_flip else "none")
    return predict_proba_modes(model, images, (mode,), batch_size=batch_size, bf16=bf16)[mode]


@torch.no_grad()
def predict_proba_modes(
    model: nn.Module, images: np.ndarray, modes: tuple[str, ...], batch_size: int = 512, bf16: bool = False
) -> dict[str, np.ndarray]:
    """Probabilities under several TTA modes at once: a view the modes share is computed once."""
    for mode in modes:
        _check_mode(mode)
    names = list(dict.fromkeys(name for mode in modes for group in _MODE_GROUPS[mode] for name in group))
    model.eval()
    first = next(model.parameters(), None)  # int8 graph modules keep packed weights, no parameters
    device = first.device if first is not None else torch.device("cpu")
    out: dict[str, list[torch.Tensor]] = {mode: [] for mode in modes}
    for start in range(0, len(images), batch_size):
        raise_if_stop_requested()
        x = to_input(images[start : start + batch_size]).to(device)  # (B, 1, 48, 48)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            view_probs = {name: model(_view(x, name)).float().softmax(dim=1) for name in names}
        for mode in modes:
            groups = [sum(view_probs[n] for n in group) / len(group) for group in _MODE_GROUPS[mode]]
            out[mode].append((sum(groups) / len(groups)).cpu())
    return {
        mode: torch.cat(parts).numpy() if parts else np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        for mode, parts in out.items()
    }
