"""Is one model better than another on the same images? A paired bootstrap of the difference.

Both models are scored on every resample of the same images, so what the images share
(easy or hard faces, the class mix) cancels and only the difference between the models
varies (Efron and Tibshirani, *An Introduction to the Bootstrap*, ch. 16; the paired
design is what makes a gain of a point on 3,589 images measurable). The interval is the
percentile interval of the difference; the champion gate promotes only when its lower
bound clears `min_improvement`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ferkit.metrics.bootstrap import FIGURES, figure_scorer, resample_blocks


@dataclass(frozen=True)
class PairedComparison:
    """The new model against the old on the same images; `gain` is positive when the new one is better."""

    metric: str
    new: float  # the new model's figure on all the images
    old: float
    gain: float  # new - old, or old - new for a loss: better is positive
    low: float  # the interval of the gain
    high: float
    confidence: float
    resamples: int
    images: int
    test: str = "paired bootstrap"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"gain {self.gain:+.4f}, {self.confidence:.0%} interval [{self.low:+.4f}, {self.high:+.4f}] "
            f"({self.test}, {self.images} images, {self.resamples} resamples)"
        )


def figure_of(metric: str) -> str:
    """The figure a gate metric names: 'tta.multi_scale.macro_f1' -> 'macro_f1'."""
    figure = metric.rsplit(".", 1)[-1]
    if figure not in FIGURES:
        raise ValueError(f"cannot compare models on {metric!r}: the figure must be one of {list(FIGURES)}")
    return figure


def paired_bootstrap(
    labels: np.ndarray,
    probs_new: np.ndarray,
    probs_old: np.ndarray,
    metric: str = "macro_f1",
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare two models' probabilities (N, C) on the same N images, on `metric`'s figure."""
    labels = np.asarray(labels, dtype=np.int64)
    probs_new, probs_old = np.asarray(probs_new, dtype=np.float64), np.asarray(probs_old, dtype=np.float64)
    if not (len(labels) == len(probs_new) == len(probs_old)) or len(labels) == 0:
        raise ValueError(
            f"a paired comparison needs both models on the same images: {len(labels)} labels, "
            f"{len(probs_new)} and {len(probs_old)} predictions"
        )
    figure = figure_of(metric)
    new_on, old_on = figure_scorer(figure, labels, probs_new), figure_scorer(figure, labels, probs_old)
    sign = -1.0 if figure == "log_loss" else 1.0
    everything = np.arange(len(labels))[None]
    new, old = float(new_on(everything)[0]), float(old_on(everything)[0])
    gains = np.concatenate(
        [sign * (new_on(idx) - old_on(idx)) for idx in resample_blocks(len(labels), resamples, seed)]
    )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(gains, [alpha, 1 - alpha])
    return PairedComparison(metric, new, old, sign * (new - old), float(low), float(high), confidence, resamples,
                            len(labels))  # fmt: skip
