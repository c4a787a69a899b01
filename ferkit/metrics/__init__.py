"""Turning predicted probabilities into figures and plots."""

from ferkit.metrics.classification import classification_metrics, confusion_matrix_png, per_class_table

__all__ = ["classification_metrics", "confusion_matrix_png", "per_class_table"]
