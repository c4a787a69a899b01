"""Drift of the new batch against the champion's training data, and whether to retrain."""

from typing import Annotated

import numpy as np
import pandas as pd
from zenml import step

from ferkit.data.dataset import FERDataset
from ferkit.models import TrainedModel
from ferkit.quality.drift import drift_report, embed, embedding_components, image_statistics
from ferkit.registry import tracking
from ferkit.retraining import decide_retraining as decide
from ferkit.retraining import unseen_mask
from steps import context


@step(experiment_tracker=context.TRACKER)
@context.stops_when_asked
def report_new_data_drift(
    champion_data: FERDataset,
    champion_holdout: FERDataset,
    new_data: FERDataset,
    champion: TrainedModel,
    sample_size: int = 5000,
    p_value_threshold: float = 0.05,
    seed: int = 0,
) -> Annotated[dict[str, float], "new_data_drift"]:
    """K-S drift of the batch's unseen images against the champion's training split, on image
    statistics and on the champion's own embeddings; empty when fewer than 2 images are unseen
    (images the champion's data already holds cannot have drifted from it)."""
    new_data = new_data.subset(unseen_mask(new_data, champion_data, champion_holdout))
    if len(new_data) < 2:
        return {}
    rng = np.random.default_rng(seed)
    reference = champion_data.split("train").images
    if len(reference) > sample_size:
        reference = reference[np.sort(rng.choice(len(reference), sample_size, replace=False))]
    current = new_data.images
    network = champion.build()
    ref_emb, cur_emb = embedding_components(embed(network, reference), embed(network, current))
    ref = pd.concat([image_statistics(reference), ref_emb], axis=1)
    cur = pd.concat([image_statistics(current), cur_emb], axis=1)
    with tracking.ArtifactDir("new_data") as out:
        result = drift_report(ref, cur, out / "drift.html", threshold=p_value_threshold)
    metrics = result.metrics()
    tracking.log_metrics(metrics, prefix="new_data.drift")
    return metrics


@step(experiment_tracker=context.TRACKER)
@context.stops_when_asked
def decide_retraining(
    lineage: dict,
    new_data_drift: dict[str, float],
    force: bool = False,
    min_new_images: int = 1,
    drift_share_threshold: float = 0.5,
) -> Annotated[dict, "retrain_decision"]:
    """Train on new data, on drift, or when forced; otherwise skip and say why."""
    decision = decide(
        int(lineage["new_images"]), new_data_drift.get("drift_share"), force, min_new_images, drift_share_threshold
    )
    tracking.log_params(
        {"retrain": decision.retrain, "reason": decision.reason[:500], "forced": force}, prefix="decision"
    )
    print(f"fer_retraining: {'training' if decision.retrain else 'not training'}: {decision.reason}")
    return decision.to_dict()
