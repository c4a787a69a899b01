"""Turning predicted probabilities into figures and plots."""

from ferkit.metrics.bootstrap import bootstrap_ci
from ferkit.metrics.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram_png,
)
from ferkit.metrics.classification import (
    NAMED_CONFUSIONS,
    classification_metrics,
    confusion_matrix_png,
    named_confusions,
    per_class_table,
)

__all__ = [
    "NAMED_CONFUSIONS",
    "apply_temperature",
    "bootstrap_ci",
    "classification_metrics",
    "confusion_matrix_png",
    "expected_calibration_error",
    "fit_temperature",
    "named_confusions",
    "per_class_table",
    "reliability_diagram_png",
]
