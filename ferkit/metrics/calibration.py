"""Calibration: expected calibration error, the reliability diagram, temperature scaling.

ECE follows Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017):
15 equal-width confidence bins, |accuracy - confidence| weighted by bin size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from ferkit.models.temperature import apply_temperature  # noqa: F401 - part of this module's API


def _bins(probs: np.ndarray, y_true: np.ndarray, n_bins: int):
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    return confidence, correct, index, edges


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """sum_b |B_b| / N * |acc(B_b) - conf(B_b)| over equal-width confidence bins."""
    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    confidence, correct, index, _ = _bins(probs, y_true, n_bins)
    ece = 0.0
    for b in range(n_bins):
        members = index == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def reliability_diagram_png(
    y_true: np.ndarray, probs: np.ndarray, path: str | Path, n_bins: int = 15, title: str = ""
) -> None:
    """Accuracy per confidence bin against the diagonal, with bin sizes below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    confidence, correct, index, edges = _bins(probs, y_true, n_bins)
    centres = (edges[:-1] + edges[1:]) / 2
    accuracy = np.array([correct[index == b].mean() if (index == b).any() else 0.0 for b in range(n_bins)])
    counts = np.bincount(index, minlength=n_bins)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), height_ratios=[3, 1], sharex=True)
    top.bar(centres, accuracy, width=1 / n_bins, edgecolor="black", alpha=0.8, label="accuracy")
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.set_ylabel("accuracy")
    ece = expected_calibration_error(y_true, probs, n_bins)
    top.set_title(f"{title} ECE = {ece:.3f}".strip())
    top.legend(loc="upper left")
    bottom.bar(centres, counts, width=1 / n_bins, edgecolor="black", color="grey")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("images")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def fit_temperature(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The temperature T > 0 minimising the NLL of softmax(log p / T) on held-out data.

    The NLL is convex in 1 / T, so one bounded scalar search over log T finds it; a set the
    model separates perfectly drives T towards the bound at 1e-4 (callers clamp the range).
    """
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    own = logits[np.arange(len(logits)), np.asarray(y_true, dtype=np.int64)]

    def nll(log_t: float) -> float:
        scaled = logits / np.exp(log_t)
        top = scaled.max(axis=1)
        return float(np.mean(top + np.log(np.exp(scaled - top[:, None]).sum(axis=1)) - own / np.exp(log_t)))

    found = minimize_scalar(nll, bounds=(np.log(1e-4), np.log(1e4)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))
