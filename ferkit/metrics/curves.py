"""Training curves from a fit's per-epoch history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def training_curves_png(history: Sequence[dict[str, float]], path: str | Path) -> Path:
    """Loss, validation macro-F1 / accuracy and learning rate per epoch; phase changes as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("no epochs in the history to plot")
    epochs = [h["epoch"] for h in history]

    def series(key: str) -> tuple[list, list]:
        """The epochs that have `key` (validation may skip epochs: `validate_every`) and its values."""
        points = [(h["epoch"], h[key]) for h in history if key in h]
        return [e for e, _ in points], [v for _, v in points]

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(epochs, [h["train.loss"] for h in history], label="train loss")
    if series("val.log_loss")[0]:
        axes[0].plot(*series("val.log_loss"), marker=".", label="val log loss")
    axes[0].set_title("loss")
    for key, label in (
        ("val.macro_f1", "val macro-F1"),
        ("val.accuracy", "val accuracy"),
        ("train.accuracy", "train accuracy (augmented)"),
    ):
        if series(key)[0]:
            axes[1].plot(*series(key), marker="." if key.startswith("val.") else None, label=label)
    axes[1].set_title("scores")
    axes[2].plot(epochs, [h["train.lr"] for h in history])
    axes[2].set_yscale("log")
    axes[2].set_title("learning rate (end of epoch)")
    changes = [
        h["epoch"] - 0.5 for prev, h in zip(history, history[1:]) if h.get("train.phase") != prev.get("train.phase")
    ]
    for ax in axes:
        for x in changes:
            ax.axvline(x, linestyle=":", color="grey")
        ax.set_xlabel("epoch")
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
