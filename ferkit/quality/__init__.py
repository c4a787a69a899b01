"""Checking a data set before training: great-expectations validation, policy, drift."""

from ferkit.quality.checks import CHECKS, QualityPolicy, flag_images, quality_summary
from ferkit.quality.validation import CheckResult, DataQualityError, ValidationReport, apply_policy, run_expectations

__all__ = [
    "CHECKS",
    "CheckResult",
    "DataQualityError",
    "QualityPolicy",
    "ValidationReport",
    "apply_policy",
    "flag_images",
    "quality_summary",
    "run_expectations",
]
