"""The paired bootstrap behind the champion gate, and the decision it drives."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.metrics.classification import classification_metrics
from ferkit.metrics.paired import FIGURES, paired_bootstrap
from ferkit.registry.decision import Gate, decide

N = 3589  # PublicTest


def champion_probs(accuracy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and 7-class probabilities right on about `accuracy` of the images."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, N)
    probs = rng.dirichlet(np.ones(7), N)
    right = rng.random(N) < accuracy
    probs[right, labels[right]] += 2.0
    return labels, probs / probs.sum(axis=1, keepdims=True)


def with_predictions(probs: np.ndarray, images: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """`probs` with the prediction on `images` moved to `classes`."""
    out = probs.copy()
    out[images, classes] += 3.0
    return out / out.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("figure", FIGURES)
def test_the_figures_equal_the_reported_ones(figure):
    labels, probs = champion_probs(0.7)
    other = with_predictions(probs, np.arange(0, N, 7), np.zeros(N // 7 + 1, dtype=int))
    comparison = paired_bootstrap(labels, other, probs, f"tta.flip.{figure}", resamples=50)
    assert comparison.new == pytest.approx(classification_metrics(labels, other)[figure], abs=1e-9)
    assert comparison.old == pytest.approx(classification_metrics(labels, probs)[figure], abs=1e-9)
    sign = -1 if figure == "log_loss" else 1
    assert comparison.gain == pytest.approx(sign * (comparison.new - comparison.old))


def test_a_gain_from_noise_alone_is_not_promoted():
    labels, probs = champion_probs(0.7)
    predicted = probs.argmax(axis=1)
    right, wrong = np.flatnonzero(predicted == labels), np.flatnonzero(predicted != labels)
    # Two models that disagree on 70 faces and are each right on about half of them: the new
    # one wins 36 to 34, a higher figure that another draw of faces would as likely reverse.
    breaks, mends = right[:34], wrong[:36]
    noisy = with_predictions(probs, breaks, (labels[breaks] + 1) % 7)
    noisy = with_predictions(noisy, mends, labels[mends])
    comparison = paired_bootstrap(labels, noisy, probs, "accuracy")
    assert comparison.gain == pytest.approx(2 / N) and comparison.low < 0 < comparison.high
    decision = decide(comparison.new, comparison, "accuracy")
    assert decision.alias == "challenger" and "does not clear" in decision.reason


def test_a_clear_gain_is_promoted_and_min_improvement_bounds_it():
    labels, probs = champion_probs(0.7)
    wrong = np.flatnonzero(probs.argmax(axis=1) != labels)
    fixed = wrong[: len(wrong) // 5]  # a fifth of the champion's mistakes put right: about 6 points
    better = with_predictions(probs, fixed, labels[fixed])
    comparison = paired_bootstrap(labels, better, probs, "macro_f1")
    assert 0.03 < comparison.low < comparison.gain < comparison.high
    assert decide(comparison.new, comparison, "macro_f1").alias == "champion"
    assert decide(comparison.new, comparison, "macro_f1", min_improvement=0.1).alias == "challenger"
    worse = paired_bootstrap(labels, probs, better, "macro_f1")  # the other way round
    assert decide(worse.new, worse, "macro_f1").alias == "challenger"
    assert decide(worse.new, worse, "macro_f1", min_improvement=-1.0).alias == "champion"  # a forced roll-out
    # for a loss, lower is better and the gain is still positive when the new model is better
    loss = paired_bootstrap(labels, better, probs, "log_loss")
    assert loss.gain > 0 and loss.new < loss.old
    assert decide(loss.new, paired_bootstrap(labels, probs, better, "log_loss"), "log_loss").alias == "challenger"


def test_first_model_is_champion_and_the_gate_refuses_the_test_split():
    assert decide(0.5, None).alias == "champion"
    with pytest.raises(ValueError, match="never reads the test split"):
        Gate(split="test")
    with pytest.raises(ValueError, match="cannot compare models on 'auc'"):
        paired_bootstrap([0], [[1.0]], [[1.0]], "auc")
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap([0, 1], [[1.0, 0.0]], [[1.0, 0.0]] * 2)
