"""Headline classification figures and the confusion-matrix plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from ferkit.data.labels import EMOTIONS

_EPS = 1e-7


def _present_labels(y_true: np.ndarray) -> list[int]:
    return sorted(int(c) for c in np.unique(y_true))


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """accuracy, balanced_accuracy, macro_f1, weighted_f1 and log_loss.

    Averages run over the classes present in `y_true` (a data set without some
    emotions is scored on the ones it has); log loss uses all 7 columns.
    """
    y_true = np.asarray(y_true)
    probs = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    y_pred = probs.argmax(axis=1)
    present = _present_labels(y_true)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "log_loss": float(log_loss(y_true, probs, labels=list(range(len(EMOTIONS))))),
    }


def per_class_table(y_true: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and support per emotion, in canonical order."""
    y_pred = np.asarray(probs).argmax(axis=1)
    labels = list(range(len(EMOTIONS)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return pd.DataFrame({"emotion": EMOTIONS, "precision": precision, "recall": recall, "f1": f1, "support": support})


def confusion_matrix_png(y_true: np.ndarray, probs: np.ndarray, path: str | Path, title: str = "") -> np.ndarray:
    """Write counts and row-normalised confusion matrices side by side; return the counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_pred = np.asarray(probs).argmax(axis=1)
    counts = confusion_matrix(y_true, y_pred, labels=list(range(len(EMOTIONS))))
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, matrix, fmt, name in ((axes[0], counts, "d", "counts"), (axes[1], normalised, ".2f", "row-normalised")):
        image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
        ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
        for i in range(len(EMOTIONS)):
            for j in range(len(EMOTIONS)):
                colour = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=axes, fraction=0.025)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return counts


# The confusions the published design discusses, as (true, predicted).
NAMED_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("fear", "surprise"),
    ("surprise", "fear"),
    ("neutral", "sad"),
    ("sad", "neutral"),
)


def named_confusions(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Share of each true class predicted as the other: {'fear_to_surprise': 0.12, ...}."""
    y_true, y_pred = np.asarray(y_true), np.asarray(probs).argmax(axis=1)
    out = {}
    for true, predicted in NAMED_CONFUSIONS:
        members = y_true == EMOTIONS.index(true)
        share = float((y_pred[members] == EMOTIONS.index(predicted)).mean()) if members.any() else float("nan")
        out[f"{true}_to_{predicted}"] = share
    return out
