"""Warm-start from the champion's weights and fine-tune on the merged data."""

from typing import Annotated

from zenml import ArtifactConfig, step
from zenml.enums import ArtifactType

from ferkit.data.dataset import FERDataset
from ferkit.data.weights import ClassWeights
from ferkit.models import TrainedModel
from ferkit.retraining import retrain_config
from ferkit.training import train
from steps import context
from steps.materializers import TrainedModelMaterializer
from steps.train.record import epoch_logger, log_train_config, log_training


@step(output_materializers={"model": TrainedModelMaterializer}, experiment_tracker=context.TRACKER)
@context.stops_when_asked
def retrain_model(
    retrain_decision: dict,
    merged_dataset: FERDataset,
    class_weights: ClassWeights,
    champion: TrainedModel,
    overrides: dict | None = None,
) -> Annotated[TrainedModel, ArtifactConfig(name="model", artifact_type=ArtifactType.MODEL)]:
    """Fine-tune a copy of the champion (its recipe, with `overrides`) through the phases, choosing
    the epoch on val. When the decision is to skip, the champion passes through untouched."""
    if not retrain_decision["retrain"]:
        return champion
    config = retrain_config(champion, overrides)
    log_train_config(config)
    training = train(config, merged_dataset, class_weights.as_list(), init=champion, callbacks=[epoch_logger])
    log_training(training)
    return training.model
