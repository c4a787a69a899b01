"""Using a trained model: evaluation on a data set (and, later, predicting faces)."""

from ferkit.inference.evaluate import EvaluationResult, evaluate, write_report

__all__ = ["EvaluationResult", "evaluate", "write_report"]
