"""Read, check and merge a batch of new labelled faces."""

import os
from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy

from ferkit.data import DataError, read_fer2013
from ferkit.data.dataset import FERDataset
from ferkit.data.manifest import build_manifest
from ferkit.quality import DataQualityError, QualityPolicy, apply_policy, run_expectations
from ferkit.registry import tracking
from ferkit.retraining import empty_dataset
from ferkit.retraining import merge_new_data as merge
from steps import context
from steps.materializers import FERDatasetMaterializer

_CACHE_ON_CONTENT = CachePolicy(include_artifact_ids=False, include_artifact_values=True)
# A batch is checked for what a batch can get wrong (blank faces, one face under two labels);
# it need not hold every split or class.
BATCH_POLICY = QualityPolicy(fail_on=["schema", "labels_known", "no_blank_images", "no_label_conflicts"])


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(p.is_file() for p in path.rglob("*"))


@step(
    cache_policy=_CACHE_ON_CONTENT,
    output_materializers={"new_data": FERDatasetMaterializer},
    experiment_tracker=context.TRACKER,
)
def ingest_new_data(
    source_sha256: str, new_data_path: str, on_bad_image: str = "fail"
) -> tuple[Annotated[FERDataset, "new_data"], Annotated[pd.DataFrame, "new_manifest"]]:
    """A folder or archive in the FER2013 layout, or a CSV; an empty drop folder is an empty batch."""
    path = Path(os.path.expanduser(new_data_path))
    if not path.exists():
        raise DataError(f"new data '{path}' does not exist: give a folder, zip or CSV in the FER2013 layout")
    if _is_empty_folder(path):
        data = empty_dataset()
    else:
        data = read_fer2013(path, on_bad_image=on_bad_image)
    tracking.log_params({"path": str(path), "sha256": source_sha256, "images": len(data)}, prefix="new_data")
    return data, build_manifest(data)


@step(output_materializers={"checked_new_data": FERDatasetMaterializer}, experiment_tracker=context.TRACKER)
def validate_new_data(
    new_data: FERDataset, new_manifest: pd.DataFrame, policy: QualityPolicy | None = None
) -> Annotated[FERDataset, "checked_new_data"]:
    """The quality gate on the batch (`BATCH_POLICY` by default); a failing batch stops the
    pipeline here, before anything is trained or registered."""
    if len(new_data) == 0:
        return new_data
    policy = policy or BATCH_POLICY
    report, _ = run_expectations(new_manifest, policy)
    tracking.log_text(report.to_markdown(), "new_data/quality_report.md")
    if not report.passed:
        raise DataQualityError("new data: " + report.stop_message())
    return apply_policy(new_data, new_manifest, report)


@step(
    output_materializers={"merged_dataset": FERDatasetMaterializer, "new_holdout": FERDatasetMaterializer},
    experiment_tracker=context.TRACKER,
)
def merge_new_data(
    champion_data: FERDataset,
    champion_holdout: FERDataset,
    new_data: FERDataset,
    new_sha256: str,
    holdout_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[Annotated[FERDataset, "merged_dataset"], Annotated[FERDataset, "new_holdout"], Annotated[dict, "lineage"]]:
    """New images join train, except a held-out share scored apart (with the champion's held-out
    images); val and test never change."""
    merged, holdout, lineage = merge(champion_data, new_data, new_sha256, holdout_fraction, seed, champion_holdout)
    tracking.log_dict(lineage.to_dict(), "lineage.json")
    tracking.log_metrics(
        {"new_images": lineage.new_images, "known_images": lineage.known_images, "held_out": lineage.held_out},
        prefix="lineage",
    )
    if context.in_step():
        log_metadata(metadata={"lineage": lineage.to_dict()}, infer_artifact=True, artifact_name="merged_dataset")
    return merged, holdout, lineage.to_dict()
