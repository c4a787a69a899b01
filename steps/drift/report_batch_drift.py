"""Drift of a batch of face crops against a reference split (the training data)."""

from typing import Annotated

import numpy as np
from zenml import step
from zenml.types import HTMLString

from ferkit.data.dataset import FERDataset
from ferkit.quality.drift import drift_report, image_statistics
from ferkit.registry import tracking
from steps import context


@step(experiment_tracker=context.TRACKER)
@context.stops_when_asked
def report_batch_drift(
    faces: np.ndarray,
    fer_dataset: FERDataset,
    reference_split: str = "train",
    sample_size: int | None = 5000,
    seed: int = 0,
) -> tuple[Annotated[HTMLString, "batch_drift_report"], Annotated[dict[str, float], "batch_drift_metrics"]]:
    """K-S drift of the batch's per-image statistics against `reference_split`.

    A batch with fewer than 2 faces cannot be tested; the report says so and the
    metrics hold only the face count.
    """
    if len(faces) < 2:
        note = f"<html><body><p>Drift not computed: the batch holds {len(faces)} face(s), at least 2 are needed.</p></body></html>"
        tracking.log_text(note, "drift/batch_vs_reference.html")
        return HTMLString(note), {"faces": float(len(faces))}
    reference = fer_dataset.split(reference_split).images
    if sample_size is not None and len(reference) > sample_size:
        rng = np.random.default_rng(seed)
        reference = reference[np.sort(rng.choice(len(reference), sample_size, replace=False))]
    with tracking.ArtifactDir("drift") as out:
        html_path = out / "batch_vs_reference.html"
        result = drift_report(image_statistics(reference), image_statistics(faces), html_path)
        html = html_path.read_text()
    tracking.log_metrics(result.metrics(), prefix="batch_drift")
    return HTMLString(html), result.metrics()
