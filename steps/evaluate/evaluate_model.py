"""Score the trained model once on the test split (PrivateTest)."""

from typing import Annotated

from zenml import get_step_context, log_metadata, step

from ferkit.data.dataset import FERDataset
from ferkit.metrics import classification_metrics, confusion_matrix_png, per_class_table
from ferkit.models import TrainedModel
from ferkit.training import predict_proba
from steps import tracking


@step
def evaluate_model(
    model: TrainedModel,
    fer_dataset: FERDataset,
    split: str = "test",
) -> Annotated[dict[str, float], "test_metrics"]:
    """accuracy, balanced accuracy, macro-F1, weighted F1 and log loss, plus a confusion-matrix PNG."""
    data = fer_dataset.split(split)
    if len(data) == 0:
        raise ValueError(f"the {split!r} split is empty; nothing to evaluate")
    tta = bool(model.recipe.get("tta_flip", False))
    probs = predict_proba(model.build(), data.images, tta_flip=tta)
    metrics = classification_metrics(data.labels, probs)
    tracking.log_metrics(metrics, prefix=split)
    with tracking.ArtifactDir("evaluation") as out:
        confusion_matrix_png(data.labels, probs, out / "confusion_matrix.png", title=f"{split}: {len(data)} images")
        per_class_table(data.labels, probs).to_csv(out / "per_class.csv", index=False)
    if _in_model_context():
        log_metadata(metadata={split: metrics}, infer_model=True)
    return metrics


def _in_model_context() -> bool:
    """True inside a pipeline run that is tied to a ZenML model (configs set `model:`)."""
    if not tracking.in_step():
        return False
    try:
        return get_step_context().model is not None
    except (RuntimeError, ValueError):
        return False
