"""Exponential moving averages of weights, with the warm-up both the classifier and the GAN use."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def warmup_decay(decay: float, updates: float) -> float:
    """min(decay, (1 + n) / (10 + n)) after n updates, so early averages are not dominated by
    the random initial weights (a plain 0.999 EMA still carries 40% of them after 900 steps)."""
    return min(decay, (1 + updates) / (10 + updates))


def ema_update(decay: float) -> Callable:
    """`multi_avg_fn` for torch's `AveragedModel`: floating tensors move towards the model with
    the warmed-up decay; integer buffers (BatchNorm counters, index tables) are copied, never
    averaged (torch's own EMA function averages them in float and truncates them back)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if averaged[0].is_floating_point():  # torch groups the tensors by dtype
            torch._foreach_lerp_(averaged, current, 1 - warmup_decay(decay, float(n_averaged)))
        else:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


def model_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An EMA of `model`'s parameters and buffers (timm's ModelEmaV2 in torch's own class)."""
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_update(decay), use_buffers=True)


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float, updates: int) -> None:
    """One EMA step of a plain copy of `model` (the GAN's generator): parameters averaged with
    the warmed-up decay, buffers copied."""
    weight = 1 - warmup_decay(decay, updates)
    for a, p in zip(average.parameters(), model.parameters(), strict=True):
        a.lerp_(p, weight)
    for a, b in zip(average.buffers(), model.buffers(), strict=True):
        a.copy_(b)
