"""Score the retrained model on the fixed test split and the held-out new images, then promote."""

from typing import Annotated

from zenml import log_metadata, step

from ferkit.data.dataset import FERDataset
from ferkit.inference import evaluate, write_report
from ferkit.metrics.classification import classification_metrics
from ferkit.models import TrainedModel
from ferkit.models.predict import predict_proba
from ferkit.quality.checks import train_copy_mask
from ferkit.registry import tracking
from ferkit.registry.decision import Gate
from ferkit.registry.names import HOLDOUT_ARTIFACT_TAG, REGISTERED_MODEL_NAME
from ferkit.registry.publish import register_and_promote
from steps import context
from steps.register.register_model import data_tags


@step(experiment_tracker=context.TRACKER)
@context.stops_when_asked
def evaluate_retrained(
    retrain_decision: dict,
    model: TrainedModel,
    champion: TrainedModel,
    merged_dataset: FERDataset,
    new_holdout: FERDataset,
    tta: str | None = None,
) -> tuple[Annotated[dict[str, float], "test_metrics"], Annotated[dict[str, float], "holdout_metrics"]]:
    """The evaluation report on test (PrivateTest), and the new model's and the champion's figures
    on the held-out new images side by side; nothing when training was skipped."""
    if not retrain_decision["retrain"]:
        return {}, {}
    result = evaluate(model, merged_dataset, split="test", tta=tta, leakage_mask=train_copy_mask(merged_dataset))
    test_metrics = result.flat_metrics()
    tracking.log_metrics(test_metrics, prefix="test")
    with tracking.ArtifactDir("evaluation") as out:
        write_report(result, out)
    holdout: dict[str, float] = {"images": float(len(new_holdout))}
    if len(new_holdout):
        for name, net in (("new", model), ("champion", champion)):
            probs = predict_proba(net.build(), new_holdout.images, tta=result.tta)
            holdout.update({f"{name}.{k}": v for k, v in classification_metrics(new_holdout.labels, probs).items()})
    tracking.log_metrics(holdout, prefix="holdout")
    return test_metrics, holdout


@step(enable_cache=False, experiment_tracker=context.TRACKER)
@context.stops_when_asked
def promote_retrained(
    retrain_decision: dict,
    model: TrainedModel,
    test_metrics: dict[str, float],
    holdout_metrics: dict[str, float],
    merged_dataset: FERDataset,
    new_holdout: FERDataset,
    lineage: dict,
    champion_info: dict,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    primary_metric: str = "macro_f1",
    min_improvement: float = 0.0,
    confidence: float = 0.95,
) -> Annotated[str, "retrain_outcome"]:
    """Register the retrained model with its lineage and run the same champion gate as
    fer_training, on val and the held-out new images together; a skipped run registers
    nothing and says why."""
    if not retrain_decision["retrain"]:
        return retrain_decision["reason"]
    tags = data_tags("merged_dataset", merged_dataset)
    holdout_id = context.input_artifact_id("new_holdout")
    if holdout_id:
        tags[HOLDOUT_ARTIFACT_TAG] = holdout_id
    tags["data.holdout_images"] = str(len(new_holdout))
    tags.update({f"lineage.{k}": str(v) for k, v in lineage.items() if not isinstance(v, dict)})
    tags.update({f"lineage.added.{k}": str(v) for k, v in lineage["added_per_class"].items()})
    tags["lineage.parent_version"] = champion_info["version"]
    tags["retrain.reason"] = retrain_decision["reason"][:500]
    tags.update({f"holdout.{k}": f"{v:.6f}" for k, v in holdout_metrics.items()})
    gate = Gate(registered_model_name, primary_metric, min_improvement, "val", confidence)
    version = register_and_promote(
        model, test_metrics, merged_dataset, gate, tags, context.model_version_id(), holdout=new_holdout
    )
    if context.in_step():
        try:
            log_metadata(metadata={"lineage": lineage, "parent_version": champion_info["version"]}, infer_model=True)
        except (RuntimeError, ValueError):
            pass  # the run is not tied to a ZenML model
    return f"{registered_model_name} v{version}"
