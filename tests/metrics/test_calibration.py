"""Calibration, bootstrap intervals and named confusions against hand-computed values and scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ferkit.metrics import (
    apply_temperature,
    bootstrap_ci,
    expected_calibration_error,
    fit_temperature,
    named_confusions,
    reliability_diagram_png,
)
from ferkit.metrics.bootstrap import FIGURES, figure_scorer, resample_blocks
from ferkit.metrics.classification import classification_metrics


def probs_with_confidence(predicted, confidence):
    probs = np.full((len(predicted), 7), 0.0)
    for i, (p, c) in enumerate(zip(predicted, confidence)):
        probs[i] = (1 - c) / 6
        probs[i, p] = c
    return probs


class TestECE:
    def test_hand_computed(self):
        # Bin (0.8667, 0.9333]: two predictions at 0.9, one right -> |0.5 - 0.9| * 2/4.
        # Bin (0.5333, 0.6]:   two predictions at 0.6, both right -> |1.0 - 0.6| * 2/4.
        y = np.array([0, 1, 2, 3])
        probs = probs_with_confidence([0, 2, 2, 3], [0.9, 0.9, 0.6, 0.6])
        assert expected_calibration_error(y, probs) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)

    def test_perfectly_calibrated_is_zero(self):
        y = np.array([0] * 10)
        probs = probs_with_confidence([0] * 10, [1.0] * 10)
        assert expected_calibration_error(y, probs) == pytest.approx(0.0)

    def test_reliability_png(self, tmp_path):
        y = np.array([0, 1, 2, 3])
        reliability_diagram_png(y, probs_with_confidence([0, 1, 1, 3], [0.9, 0.8, 0.5, 0.7]), tmp_path / "r.png")
        assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


class TestTemperature:
    def test_recovers_a_known_temperature(self):
        rng = np.random.default_rng(0)
        logits = rng.normal(0, 2, (4000, 7))
        true_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        y = np.array([rng.choice(7, p=p) for p in true_probs])
        overconfident = apply_temperature(true_probs, 0.5)  # sharpened: logits doubled
        assert fit_temperature(y, overconfident) == pytest.approx(2.0, rel=0.1)

    def test_apply_temperature_keeps_the_argmax(self):
        probs = probs_with_confidence([3, 1], [0.7, 0.5])
        scaled = apply_temperature(probs, 3.0)
        assert (scaled.argmax(1) == probs.argmax(1)).all() and np.allclose(scaled.sum(1), 1)
        assert scaled.max() < probs.max()


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 2000):
        y = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < 0.8, y, 1 - y)
        low, high = bootstrap_ci(y, np.eye(7)[pred], "accuracy", n_resamples=400)
        assert low <= (y == pred).mean() <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


@pytest.mark.parametrize("figure", FIGURES)
def test_each_resample_is_scored_as_scikit_learn_scores_it(figure):
    """Counts stand in for a scikit-learn call per resample: the same figure on every resample,
    including resamples that miss a class, and a class no face is predicted as."""
    rng = np.random.default_rng(2)
    y = np.r_[rng.integers(0, 6, 300), [6, 6]]  # two faces of the last class: most resamples miss one
    probs = rng.dirichlet(np.ones(7), len(y))
    probs[:, 3] = 0.0  # nothing is predicted as class 3
    probs[np.arange(0, len(y), 2), y[::2]] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    present = sorted(set(y.tolist()))
    reference = {
        "accuracy": lambda t, p, q: accuracy_score(t, p),
        "balanced_accuracy": lambda t, p, q: balanced_accuracy_score(t, p),
        "macro_f1": lambda t, p, q: f1_score(t, p, labels=present, average="macro", zero_division=0),
        "weighted_f1": lambda t, p, q: f1_score(t, p, labels=present, average="weighted", zero_division=0),
        "log_loss": lambda t, p, q: classification_metrics(t, q)["log_loss"],  # its clipping of zeros
    }[figure]
    blocks = list(resample_blocks(len(y), 60, seed=3))
    scored = np.concatenate([figure_scorer(figure, y, probs)(idx) for idx in blocks])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about a class a resample misses
        expected = [reference(y[i], probs[i].argmax(axis=1), probs[i]) for idx in blocks for i in idx]
    assert len(scored) == 60 and scored == pytest.approx(expected, abs=1e-9)
    assert (np.concatenate(blocks) != np.concatenate(blocks)[0]).any()  # the resamples differ


def test_resamples_come_in_bounded_blocks_and_repeat_with_the_seed():
    blocks = list(resample_blocks(1_000_000, 5, seed=0))
    assert [b.shape for b in blocks] == [(1, 1_000_000)] * 5  # a block stays within a few MiB
    again = list(resample_blocks(1_000_000, 5, seed=0))
    assert all((a == b).all() for a, b in zip(blocks, again))
    with pytest.raises(ValueError, match="unknown figure 'auc'"):
        bootstrap_ci([0], [[1.0]], "auc")
    with pytest.raises(ValueError, match="got 3 images and 0 resamples"):
        bootstrap_ci([0, 1, 1], np.eye(2)[[0, 1, 0]], "accuracy", n_resamples=0)


def test_named_confusions():
    # fear=2, surprise=5, sad=4, neutral=6
    y = np.array([2, 2, 2, 2, 5, 5, 6, 4])
    probs = probs_with_confidence([5, 2, 2, 5, 2, 5, 4, 4], [0.9] * 8)
    shares = named_confusions(y, probs)
    assert shares == {"fear_to_surprise": 0.5, "surprise_to_fear": 0.5, "neutral_to_sad": 1.0, "sad_to_neutral": 0.0}
