"""The data quality gate: great-expectations on the manifest, then the configured policy."""

import json
from typing import Annotated

import pandas as pd
from zenml import step
from zenml.types import MarkdownString

from ferkit.data.dataset import FERDataset
from ferkit.quality import DataQualityError, QualityPolicy, ValidationReport, apply_policy, run_expectations
from ferkit.registry import tracking
from steps import context
from steps.materializers import FERDatasetMaterializer


@step(output_materializers={"validated_dataset": FERDatasetMaterializer}, experiment_tracker=context.TRACKER)
@context.stops_when_asked
def validate_data(
    fer_dataset: FERDataset, manifest: pd.DataFrame, policy: QualityPolicy | None = None
) -> tuple[
    Annotated[FERDataset, "validated_dataset"],
    Annotated[ValidationReport, "validation_report"],
    Annotated[MarkdownString, "validation_summary"],
]:
    """Validate, log the report and GE's JSON to MLflow, stop on `fail_on` failures, apply the policy.

    The report is logged before the gate decides, so a stopped run still shows why.
    """
    policy = policy or QualityPolicy()
    report, ge_result = run_expectations(manifest, policy)
    cleaned = apply_policy(fer_dataset, manifest, report) if report.passed else fer_dataset
    summary = report.to_markdown()

    tracking.log_params(policy.model_dump(), prefix="quality")
    tracking.log_text(summary, "quality/report.md")
    tracking.log_text(json.dumps(ge_result, indent=1), "quality/great_expectations.json")
    tracking.log_text(report.model_dump_json(indent=2), "quality/report.json")
    counts = {k: v for k, v in report.summary.items() if isinstance(v, int)}
    tracking.log_metrics({**counts, "checks_failed": len(report.failed)}, prefix="quality")
    tracking.log_metrics({f"removed.{k}": v for k, v in report.actions.items()}, prefix="quality")

    if not report.passed:
        raise DataQualityError(report.stop_message())
    return cleaned, report, MarkdownString(summary)
