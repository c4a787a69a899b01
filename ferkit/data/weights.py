"""Class weights for the loss."""

from __future__ import annotations

import numpy as np

from ferkit.data.labels import EMOTIONS


def inverse_frequency_weights(labels: np.ndarray, num_classes: int = len(EMOTIONS)) -> np.ndarray:
    """`N / (K * n_c)` per class: a balanced set gets all ones.

    A class absent from `labels` cannot be weighted and is an error, since a
    model trained without it cannot predict it.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    missing = [EMOTIONS[c] for c in np.flatnonzero(counts == 0)]
    if missing:
        raise ValueError(f"cannot weight classes with no training images: {missing}")
    return counts.sum() / (num_classes * counts)
