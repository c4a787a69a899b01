"""Batched augmentation on tensors: one affine warp per image, on whatever device the batch is."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 15.0  # max absolute rotation
    shear: float = 0.1  # max absolute shear (tangent)
    zoom: float = 0.15  # scale drawn from [1 - zoom, 1 + zoom]
    shift: float = 0.1  # max translation, fraction of the image side
    brightness: tuple[float, float] = (0.8, 1.2)  # multiplicative range
    hflip: bool = True  # mirror half of the faces
    strength: float = 1.0  # scales every geometric range; 0 disables them


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly flip, rotate, shear, zoom, shift and brighten a batch (B, 1, H, W) in [0, 1].

    Pixels warped in from outside the image are zero (constant fill).
    """
    b, device = x.shape[0], x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(b, generator=generator, device="cpu").to(device) * (high - low) + low

    s = config.strength
    angle = uniform(-1, 1) * math.radians(config.rotation_deg) * s
    shear = uniform(-1, 1) * config.shear * s
    scale = 1 + uniform(-1, 1) * config.zoom * s
    tx, ty = uniform(-1, 1) * 2 * config.shift * s, uniform(-1, 1) * 2 * config.shift * s
    flip = (uniform(0, 1) < 0.5).float() * 2 - 1 if config.hflip else torch.ones(b, device=device)

    cos, sin = torch.cos(angle), torch.sin(angle)
    # Inverse map output -> input coordinates: A = R(angle) @ [[1, shear], [0, 1]] @ diag(flip, 1) / scale.
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = cos * flip / scale
    theta[:, 0, 1] = (cos * shear - sin) / scale
    theta[:, 1, 0] = sin * flip / scale
    theta[:, 1, 1] = (sin * shear + cos) / scale
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    low, high = config.brightness
    gain = uniform(low, high).view(b, 1, 1, 1)
    return (out * gain).clamp_(0, 1)
