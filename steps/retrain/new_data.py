"""Read, check and merge a batch of new labelled faces."""

import os
from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy

from ferkit.data import DataError, read_fer2013
from ferkit.data.dataset import FERDataset
from ferkit.data.labels import IMAGE_SUFFIXES
from ferkit.data.manifest import build_manifest
from ferkit.data.readers import check_unchanged, file_sha256
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


# What a drop folder can hold that is data: images, or an archive or CSV of them.
_DATA_SUFFIXES = (*IMAGE_SUFFIXES, ".zip", ".csv")
LISTED = 10  # files named in one error


def _is_empty_folder(path: Path) -> bool:
    """No data in it: hidden files (.DS_Store, .gitkeep) and notes (a README) do not count."""
    return path.is_dir() and not any(
        p.is_file() and p.suffix.lower() in _DATA_SUFFIXES and not any(part.startswith(".") for part in p.parts)
        for p in path.rglob("*")
    )


def _batch_in(path: Path) -> Path:
    """What to read: the folder itself when it holds train/ or test/ (or is a file), else the one zip
    or CSV dropped into it."""
    if not path.is_dir():
        return path
    visible = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
    if any(p.is_dir() and p.name in ("train", "test") for p in visible):
        return path
    archives = [p for p in visible if p.is_file() and p.suffix.lower() in (".zip", ".csv")]
    if len(archives) > 1:
        raise DataError(f"new data '{path}': {len(archives)} zips or CSVs ({', '.join(p.name for p in archives)}); "
                        "drop one batch at a time, or unpack them into train/<emotion>/")  # fmt: skip
    return archives[0] if archives else path


@step(
    cache_policy=_CACHE_ON_CONTENT,
    output_materializers={"new_data": FERDatasetMaterializer},
    experiment_tracker=context.TRACKER,
)
@context.stops_when_asked
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
        batch = _batch_in(path)
        data = read_fer2013(batch, on_bad_image=on_bad_image)
        if batch != path:  # a zip or CSV dropped in the folder: the fingerprint is the folder's
            data.report.source_sha256 = file_sha256(path)
        check_unchanged(data, source_sha256)
        left_out = {name: why for name, why in data.report.ignored.items()
                    if Path(name).suffix.lower() in _DATA_SUFFIXES or why.startswith("not an image")}  # fmt: skip
        if left_out:  # faces a user dropped in to be learned from, which the layout would leave out unsaid
            shown = "; ".join(f"{name} ({why})" for name, why in list(left_out.items())[:LISTED])
            raise DataError(
                f"new data '{path}': {len(left_out)} file(s) are not in the layout train/<emotion>/<image> or "
                f"test/<emotion>/<image> and would be left out: {shown}; move them there, or out of the folder"
            )
    tracking.log_params({"path": str(path), "sha256": source_sha256, "images": len(data)}, prefix="new_data")
    return data, build_manifest(data)


@step(output_materializers={"checked_new_data": FERDatasetMaterializer}, experiment_tracker=context.TRACKER)
@context.stops_when_asked
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
@context.stops_when_asked
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
