"""Log the model to MLflow, register it as `fer_emotion`, and run the promotion gate."""

from typing import Annotated

from zenml import step

from ferkit.data.dataset import FERDataset
from ferkit.inference.evaluation import SplitProbabilities
from ferkit.models import TrainedModel
from ferkit.registry.decision import Gate
from ferkit.registry.names import DATA_ARTIFACT_TAG, REGISTERED_MODEL_NAME
from ferkit.registry.publish import register_and_promote
from steps import context


@step(enable_cache=False, experiment_tracker=context.TRACKER)
@context.stops_when_asked
def register_model(
    model: TrainedModel,
    test_metrics: dict[str, float],
    fer_dataset: FERDataset,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    primary_metric: str = "macro_f1",
    min_improvement: float = 0.0,
    split: str = "val",
    confidence: float = 0.95,
    val_probabilities: SplitProbabilities | None = None,
) -> Annotated[str, "model_version"]:
    """Register a new version, compare it with the `champion` on the same val (PublicTest) images
    with a paired bootstrap, and give it `champion` (the lower bound of its gain clears
    `min_improvement`, or there is no champion) or `challenger`. `test_metrics` (PrivateTest) are
    tagged for reporting only. `val_probabilities` (evaluate_model's) spare scoring the new model
    again when they are its probabilities on the gate's images with the gate's views. A model whose weights are registered already (a cached or repeated
    run) is not registered again; that version is returned.

    Everything is logged and tagged before any alias moves, so a failure leaves the
    registry's aliases where they were. The ZenML model version gets the matching
    stage (production / staging).
    """
    gate = Gate(registered_model_name, primary_metric, min_improvement, split, confidence)
    tags = data_tags("fer_dataset", fer_dataset)
    return register_and_promote(
        model, test_metrics, fer_dataset, gate, tags, context.model_version_id(), scored=val_probabilities
    )


def data_tags(input_name: str, data: FERDataset) -> dict[str, str]:
    """Which data trained the model: its fingerprint and, inside a step, its ZenML artifact version."""
    tags = {"data.fingerprint": data.fingerprint, "data.train_images": str(len(data.split("train")))}
    artifact_id = context.input_artifact_id(input_name)
    if artifact_id:
        tags[DATA_ARTIFACT_TAG] = artifact_id
    return tags
