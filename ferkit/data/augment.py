"""Batched augmentation on tensors: one affine warp per image, on whatever device the batch is,
and mixing of image pairs (mixup, cutmix)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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
    erase: float = 0.0  # probability of random erasing (one noise-filled rectangle per image)
    erase_area: tuple[float, float] = (0.02, 0.2)  # erased share of the image


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly flip, rotate, shear, zoom, shift, brighten and erase a batch (B, 1, H, W) in [0, 1].

    Pixels warped in from outside the image are zero (constant fill). Erasing
    (Zhong et al. 2020) replaces one rectangle with uniform noise.
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
    out = (out * gain).clamp_(0, 1)
    if config.erase > 0:
        out = _erase(out, config, uniform, generator)
    return out


def _erase(x: torch.Tensor, config: AugmentConfig, uniform, generator: torch.Generator | None) -> torch.Tensor:
    """One rectangle per chosen image (area share and aspect ratio drawn at random) set to noise."""
    b, _, h, w = x.shape
    area = uniform(*config.erase_area) * h * w
    aspect = torch.exp(uniform(math.log(0.3), math.log(1 / 0.3)))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    top = uniform(0, 1) * (h - eh)
    left = uniform(0, 1) * (w - ew)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (
        (rows >= top.view(b, 1, 1))
        & (rows < (top + eh).view(b, 1, 1))
        & (cols >= left.view(b, 1, 1))
        & (cols < (left + ew).view(b, 1, 1))
    )
    chosen = (uniform(0, 1) < config.erase).view(b, 1, 1)
    mask = (inside & chosen).unsqueeze(1)  # (B, 1, H, W)
    noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
    return torch.where(mask, noise, x)


@dataclass(frozen=True)
class MixConfig:
    mode: str  # "mixup" (Zhang et al. 2018: a blend) or "cutmix" (Yun et al. 2019: a pasted box)
    alpha: float = 1.0  # the mixing share is drawn from Beta(alpha, alpha)
    probability: float = 1.0  # share of batches mixed


def mix_batch(
    x: torch.Tensor, config: MixConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix every image of a batch (B, C, H, W) with a partner from the same batch.

    Returns (mixed batch, partner index per image, share of each image that is its own); the
    loss weighs an image's label by that share and its partner's by the rest. A batch left
    unmixed (with probability 1 - `probability`) comes back as it was with share 1. The same
    random numbers are drawn either way, so one batch's choice does not shift the next's.
    """
    if config.mode not in ("mixup", "cutmix"):
        raise ValueError(f"mix mode {config.mode!r}: expected mixup or cutmix")
    b, _, h, w = x.shape
    apply, cy, cx = torch.rand(3, generator=generator).tolist()
    partner = torch.randperm(b, generator=generator)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    share = float(np.random.default_rng(seed).beta(config.alpha, config.alpha))
    if apply >= config.probability:
        return x, partner, 1.0
    other = x[partner.to(x.device)]
    if config.mode == "mixup":
        return share * x + (1 - share) * other, partner, share
    # cutmix: a box of about (1 - share) of the area, centred anywhere, clipped at the borders;
    # the share is then what the clipped box leaves of the image.
    side = math.sqrt(1 - share)
    top, bottom = _span(cy * h, side * h, h)
    left, right = _span(cx * w, side * w, w)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = other[:, :, top:bottom, left:right]
    return mixed, partner, 1 - (bottom - top) * (right - left) / (h * w)


def _span(centre: float, length: float, size: int) -> tuple[int, int]:
    return int(max(0, round(centre - length / 2))), int(min(size, round(centre + length / 2)))
