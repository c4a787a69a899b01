"""Decode FER2013 once into the data set artifact and its manifest."""

from typing import Annotated, Literal

import pandas as pd
from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy

from ferkit.data import read_fer2013
from ferkit.data.dataset import FERDataset
from ferkit.data.images import ReadLimits
from ferkit.data.manifest import build_manifest
from ferkit.data.readers import check_unchanged
from steps import context
from steps.materializers import FERDatasetMaterializer

# The source hash arrives as a fresh artifact every run; its value, not its
# id, belongs in the cache key: same file, cached; changed file, re-ingested.
_CACHE_ON_CONTENT = CachePolicy(include_artifact_ids=False, include_artifact_values=True)


@step(cache_policy=_CACHE_ON_CONTENT, output_materializers={"fer_dataset": FERDatasetMaterializer})
@context.stops_when_asked
def ingest_fer2013(
    source_sha256: str,
    data_path: str | None = None,
    on_bad_image: Literal["skip", "fail"] = "skip",
    limit_per_class: int | None = None,
    read_limits: dict[str, int] | None = None,
) -> tuple[Annotated[FERDataset, "fer_dataset"], Annotated[pd.DataFrame, "manifest"]]:
    """Read the zip, folder or CSV at `data_path` (else $FER2013_PATH).

    `limit_per_class` keeps the first n images of each split and class (smoke runs).
    `read_limits` overrides fields of `ReadLimits` (max_image_pixels, max_file_bytes,
    max_archive_bytes, max_files) over the FERKIT_MAX_* variables and the defaults.
    """
    limits = ReadLimits.from_env(**(read_limits or {}))
    data = read_fer2013(data_path, on_bad_image=on_bad_image, limit_per_class=limit_per_class, limits=limits)
    check_unchanged(data, source_sha256)
    summary = data.summary()
    if context.in_step():
        log_metadata(
            metadata={
                "splits": summary["splits"],
                "train_classes": summary["classes"]["train"],
                "converted": data.report.converted,
                "bad_files": {name: data.report.bad_reasons.get(name, "") for name in data.report.bad_files[:100]},
                "refused_links": dict(list(data.report.refused_links.items())[:100]),
                "conversions": data.report.conversions,
                "missing_classes": data.report.missing_classes,
                "source_sha256": source_sha256,
            },
            infer_artifact=True,
            artifact_name="fer_dataset",
        )
    return data, build_manifest(data)
