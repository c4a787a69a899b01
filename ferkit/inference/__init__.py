"""Using a trained model: predicting faces in photos, evaluating on a data set.

Names load on first use, so `ferkit predict` does not import the evaluation stack.
"""

from ferkit._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ferkit.inference.evaluation": ("EvaluationResult", "evaluate", "write_report"),
        "ferkit.inference.predictor": ("Predictor", "detect_faces", "to_face_array"),
    },
)
