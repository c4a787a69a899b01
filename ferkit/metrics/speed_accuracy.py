"""Accuracy against inference speed: one point per model of a comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ferkit.files import atomic_write


def speed_accuracy_png(rows: Sequence[Mapping], published: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Balanced accuracy (the published design's headline figure) against inference faces per
    second (log scale), one labelled point per row; each published figure is a dashed line, since
    the publication gives no speeds. Rows without both figures are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.get("balanced_accuracy") is not None and r.get("inference_faces_per_second")]
    if not points:
        raise ValueError("no row has both a balanced accuracy and an inference speed to plot")
    fig, ax = plt.subplots(figsize=(8, 5))
    for row in points:
        x, y = row["inference_faces_per_second"], 100 * row["balanced_accuracy"]
        ax.scatter(x, y, s=40, marker="s" if row.get("architecture") != "hybrid" else "o")
        ax.annotate(row["row"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for name, figures in published.items():
        if figures.get("balanced_accuracy") is not None:
            ax.axhline(figures["balanced_accuracy"], linestyle="--", linewidth=1, color="gray")
            ax.annotate(
                f"published {name}: {figures['balanced_accuracy']:.2f}",
                (0.01, figures["balanced_accuracy"]),
                xycoords=("axes fraction", "data"),
                textcoords="offset points",
                xytext=(0, 3),
                fontsize=8,
                color="gray",
            )
    ax.set_xscale("log")
    ax.set_xlabel("inference, faces per second (fp32, batch 512, log scale)")
    ax.set_ylabel("balanced accuracy on PrivateTest, %")
    ax.set_title("Backbones: accuracy against speed (circles: hybrid model, squares: baselines)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=120))
    plt.close(fig)
    return Path(path)
