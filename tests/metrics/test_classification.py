"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferkit.metrics import classification_metrics, confusion_matrix_png, per_class_table


def one_hot_probs(predicted: list[int], confidence: float = 0.94) -> np.ndarray:
    rest = (1 - confidence) / 6
    probs = np.full((len(predicted), 7), rest)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


class TestClassificationMetrics:
    def test_hand_computed_example(self):
        # Classes 0 and 1 only. True: 0 0 0 1; predicted: 0 0 1 1.
        y_true = np.array([0, 0, 0, 1])
        probs = one_hot_probs([0, 0, 1, 1])
        m = classification_metrics(y_true, probs)
        assert m["accuracy"] == pytest.approx(3 / 4)
        assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
        f1_0 = 2 * 1 * (2 / 3) / (1 + 2 / 3)  # precision 1, recall 2/3
        f1_1 = 2 * 0.5 * 1 / (0.5 + 1)  # precision 1/2, recall 1
        assert m["macro_f1"] == pytest.approx((f1_0 + f1_1) / 2)  # over the classes present
        assert m["weighted_f1"] == pytest.approx((3 * f1_0 + 1 * f1_1) / 4)
        expected_loss = -(3 * math.log(0.94) + math.log(0.01)) / 4
        assert m["log_loss"] == pytest.approx(expected_loss, rel=1e-6)

    def test_perfect_predictions(self):
        y = np.arange(7).repeat(2)
        m = classification_metrics(y, one_hot_probs(list(y), confidence=1.0))
        assert m["accuracy"] == m["balanced_accuracy"] == m["macro_f1"] == 1.0
        assert m["log_loss"] < 1e-5


def test_per_class_table():
    table = per_class_table(np.array([0, 0, 1, 1]), one_hot_probs([0, 1, 1, 1]))
    row = table.set_index("emotion")
    assert row.loc["angry", "recall"] == pytest.approx(0.5)
    assert row.loc["disgust", "precision"] == pytest.approx(2 / 3)
    assert row.loc["fear", "support"] == 0


def test_confusion_matrix_png(tmp_path):
    counts = confusion_matrix_png(np.array([0, 0, 3, 6]), one_hot_probs([0, 3, 3, 4]), tmp_path / "cm.png")
    assert counts[0, 0] == 1 and counts[0, 3] == 1 and counts[3, 3] == 1 and counts[6, 4] == 1
    assert counts.sum() == 4
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
