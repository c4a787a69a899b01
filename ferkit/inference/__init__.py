"""Using a trained model: predicting faces, evaluating on a data set, the promotion decision.

Names load on first use, so `ferkit predict` does not import the evaluation stack.
"""

import importlib

_EXPORTS = {
    "EvaluationResult": "ferkit.inference.evaluation",
    "evaluate": "ferkit.inference.evaluation",
    "write_report": "ferkit.inference.evaluation",
    "Predictor": "ferkit.inference.predictor",
    "detect_faces": "ferkit.inference.predictor",
    "to_face_array": "ferkit.inference.predictor",
    "PromotionDecision": "ferkit.inference.promotion",
    "decide": "ferkit.inference.promotion",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ferkit.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
