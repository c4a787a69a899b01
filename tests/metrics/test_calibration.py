"""Calibration, bootstrap intervals and named confusions against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.metrics import (
    apply_temperature,
    bootstrap_ci,
    expected_calibration_error,
    fit_temperature,
    named_confusions,
    reliability_diagram_png,
)


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
    accuracy = lambda t, p: float((t == p).mean())  # noqa: E731
    widths = []
    for n in (100, 2000):
        y = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < 0.8, y, 1 - y)
        low, high = bootstrap_ci(y, pred, accuracy, n_resamples=400)
        assert low <= accuracy(y, pred) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_named_confusions():
    # fear=2, surprise=5, sad=4, neutral=6
    y = np.array([2, 2, 2, 2, 5, 5, 6, 4])
    probs = probs_with_confidence([5, 2, 2, 5, 2, 5, 4, 4], [0.9] * 8)
    shares = named_confusions(y, probs)
    assert shares == {"fear_to_surprise": 0.5, "surprise_to_fear": 0.5, "neutral_to_sad": 1.0, "sad_to_neutral": 0.0}
