"""Evidently drift report between two splits: image statistics and model embeddings."""

from typing import Annotated

import numpy as np
import pandas as pd
from zenml import step
from zenml.types import HTMLString

from ferkit.data.dataset import FERDataset
from ferkit.models import TrainedModel
from ferkit.quality.drift import drift_report, embed, embedding_components, image_statistics
from ferkit.registry import tracking
from steps import context


@step(experiment_tracker=context.TRACKER)
@context.stops_when_asked
def report_drift(
    fer_dataset: FERDataset,
    model: TrainedModel | None = None,
    reference_split: str = "train",
    current_split: str = "test",
    sample_size: int | None = 5000,
    p_value_threshold: float = 0.05,
    seed: int = 0,
) -> tuple[Annotated[HTMLString, "drift_report"], Annotated[dict[str, float], "drift_metrics"]]:
    """K-S drift of `current_split` against `reference_split` on per-image statistics and,
    when a model is given, on the first principal components of its penultimate features.

    Each side is subsampled to `sample_size` images (seeded) to keep the step quick.
    """
    rng = np.random.default_rng(seed)

    def sample(split: str) -> np.ndarray:
        images = fer_dataset.split(split).images
        if len(images) == 0:
            raise ValueError(f"the {split!r} split is empty; nothing to compare")
        if sample_size is not None and len(images) > sample_size:
            images = images[np.sort(rng.choice(len(images), sample_size, replace=False))]
        return images

    reference, current = sample(reference_split), sample(current_split)
    ref_features, cur_features = image_statistics(reference), image_statistics(current)
    if model is not None:
        network = model.build()
        ref_emb, cur_emb = embedding_components(embed(network, reference), embed(network, current))
        ref_features = pd.concat([ref_features, ref_emb], axis=1)
        cur_features = pd.concat([cur_features, cur_emb], axis=1)

    with tracking.ArtifactDir("drift") as out:
        html_path = out / f"{current_split}_vs_{reference_split}.html"
        result = drift_report(ref_features, cur_features, html_path, threshold=p_value_threshold)
        html = html_path.read_text()
    metrics = result.metrics()
    tracking.log_metrics(metrics, prefix="drift")
    return HTMLString(html), metrics
