"""Class weights for the loss.

Inverse frequency `N / (K * n_c)` gives a balanced set all ones and the rare
classes more. The published design's table is proportional to `1 / n_c` with a
different constant; PyTorch's weighted cross-entropy (mean reduction) divides by
the summed weights of the batch, so any constant factor cancels and both give
the same gradients. "Effective number of samples" (Cui et al., CVPR 2019)
weighs by `(1 - beta) / (1 - beta ** n_c)`, softer than inverse frequency for
large classes; it is normalised to sum to K.

`power` tempers inverse frequency: `(N / (K * n_c)) ** power`. 1 is full
balancing, 0.5 the square-root weighting that keeps most of the rare classes'
boost with a fraction of its gradient noise, 0 no weighting at all.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel

from ferkit.data.labels import EMOTIONS

WeightMethod = Literal["inverse_frequency", "effective_number"]


class ClassWeights(BaseModel):
    """A weight per emotion and how it was computed."""

    method: WeightMethod
    beta: float | None = None  # effective_number only
    power: float | None = None  # inverse_frequency only: the exponent on N / (K * n_c)
    counts: dict[str, int]  # training images per emotion
    weights: dict[str, float]  # loss weight per emotion

    def as_list(self) -> list[float]:
        """Weights in canonical label order."""
        return [self.weights[name] for name in EMOTIONS]

    def table(self) -> str:
        """CSV: emotion, train images, weight."""
        return "emotion,train_images,weight\n" + "".join(
            f"{name},{self.counts[name]},{self.weights[name]:.6f}\n" for name in EMOTIONS
        )


def _counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    missing = [EMOTIONS[c] for c in np.flatnonzero(counts == 0)]
    if missing:
        raise ValueError(f"cannot weight classes with no training images: {missing}")
    return counts


def inverse_frequency_weights(labels: np.ndarray, num_classes: int = len(EMOTIONS), power: float = 1.0) -> np.ndarray:
    """`(N / (K * n_c)) ** power` per class: a balanced set gets all ones.

    A class absent from `labels` cannot be weighted and is an error, since a
    model trained without it cannot predict it.
    """
    if not 0 <= power <= 1:
        raise ValueError(f"power must lie in [0, 1] (1: full inverse frequency, 0: no weighting), got {power}")
    counts = _counts(labels, num_classes)
    return np.power(counts.sum() / (num_classes * counts), power)


def effective_number_weights(labels: np.ndarray, beta: float = 0.999, num_classes: int = len(EMOTIONS)) -> np.ndarray:
    """`(1 - beta) / (1 - beta ** n_c)`, normalised to sum to K (Cui et al. 2019)."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    counts = _counts(labels, num_classes)
    raw = (1 - beta) / (1 - np.power(beta, counts))
    return raw * num_classes / raw.sum()


def class_weights(
    labels: np.ndarray, method: WeightMethod = "inverse_frequency", beta: float = 0.999, power: float = 1.0
) -> ClassWeights:
    """Weights for the training labels by the named method."""
    used_beta, used_power = None, None
    if method == "inverse_frequency":
        weights, used_power = inverse_frequency_weights(labels, power=power), power
    elif method == "effective_number":
        weights, used_beta = effective_number_weights(labels, beta), beta
    else:
        raise ValueError(f"unknown class-weight method {method!r}; use inverse_frequency or effective_number")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(EMOTIONS))
    return ClassWeights(
        method=method,
        beta=used_beta,
        power=used_power,
        counts={name: int(c) for name, c in zip(EMOTIONS, counts)},
        weights={name: float(w) for name, w in zip(EMOTIONS, weights)},
    )
