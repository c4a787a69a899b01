"""Drift between two image sets (Evidently 0.7): per-image statistics and model embeddings.

`fer_training` compares train with test; retraining compares the champion's
training data with new data. Every feature gets a two-sample Kolmogorov-Smirnov
test, so each carries a p-value (Evidently's default for large samples is a
distance, not a p-value).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

IMAGE_FEATURES = ("mean", "std", "contrast", "sharpness", "entropy")


def image_statistics(images: np.ndarray) -> pd.DataFrame:
    """Per-image mean, std, contrast (5th-95th percentile range), sharpness (variance
    of the Laplacian) and entropy (bits, 256-bin histogram) of uint8 (N, H, W) images."""
    x = images.astype(np.float32)
    flat = x.reshape(len(x), -1)
    low, high = np.percentile(flat, [5, 95], axis=1)
    laplacian = (
        x[:, 1:-1, :-2] + x[:, 1:-1, 2:] + x[:, :-2, 1:-1] + x[:, 2:, 1:-1] - 4 * x[:, 1:-1, 1:-1]
    )  # (N, H-2, W-2)
    counts = np.stack([np.bincount(img.ravel(), minlength=256) for img in images.reshape(len(images), -1)])
    p = counts / counts.sum(axis=1, keepdims=True)
    entropy = -(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0)).sum(axis=1)
    return pd.DataFrame(
        {
            "mean": flat.mean(axis=1),
            "std": flat.std(axis=1),
            "contrast": high - low,
            "sharpness": laplacian.reshape(len(x), -1).var(axis=1),
            "entropy": entropy,
        }
    )


@torch.no_grad()
def embed(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Penultimate-layer features (N, D) of a model with `forward_features`."""
    if not hasattr(model, "forward_features"):
        raise TypeError(f"{type(model).__name__} has no forward_features(); cannot embed images")
    model.eval()
    out = [
        model.forward_features(torch.as_tensor(images[i : i + batch_size]).unsqueeze(1).float() / 255.0)
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy()


def embedding_components(
    reference: np.ndarray, current: np.ndarray, n_components: int = 8
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Project both embedding sets on the reference's first principal components."""
    mean = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    basis = vt[:n_components].T  # (D, k)
    names = [f"emb_pc{i + 1}" for i in range(basis.shape[1])]
    return (
        pd.DataFrame((reference - mean) @ basis, columns=names),
        pd.DataFrame((current - mean) @ basis, columns=names),
    )


@dataclass
class DriftResult:
    drift_share: float  # share of features whose K-S test says drifted
    drifted: list[str] = field(default_factory=list)  # drifted feature names
    p_values: dict[str, float] = field(default_factory=dict)  # feature -> K-S p-value
    threshold: float = 0.05  # p-value under which a feature has drifted

    def metrics(self) -> dict[str, float]:
        return {"drift_share": self.drift_share, **{f"p_value.{k}": v for k, v in self.p_values.items()}}


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, html_path: str | Path | None = None, threshold: float = 0.05
) -> DriftResult:
    """Evidently data-drift report over the shared numeric columns; HTML written when a path is given."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    columns = [c for c in reference.columns if c in current.columns]
    if not columns:
        raise ValueError("reference and current share no feature columns")
    if len(reference) < 2 or len(current) < 2:
        raise ValueError(
            f"drift needs at least 2 rows on each side (reference {len(reference)}, current {len(current)})"
        )
    definition = DataDefinition(numerical_columns=columns)
    report = Report([DataDriftPreset(num_method="ks", num_threshold=threshold)], include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition),
    )
    if html_path is not None:
        snapshot.save_html(str(html_path))
    result = snapshot.dict()
    p_values, drifted, share = {}, [], 0.0
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            p_values[config["column"]] = float(metric["value"])
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in result["tests"]:
        column = test.get("metric_config", {}).get("params", {}).get("column")
        if column in p_values and test["status"] == "FAIL":
            drifted.append(column)
    return DriftResult(drift_share=share, drifted=sorted(drifted), p_values=p_values, threshold=threshold)
