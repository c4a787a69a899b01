"""Train the configured architecture through its phases; per-epoch metrics go to MLflow through a callback."""

import os
from typing import Annotated

import yaml
from zenml import ArtifactConfig, get_step_context, step
from zenml.enums import ArtifactType

from ferkit.data.dataset import FERDataset
from ferkit.data.weights import ClassWeights
from ferkit.models import TrainedModel
from ferkit.registry import tracking
from ferkit.training import TrainConfig
from ferkit.training.train import resume_path, train_resumable
from steps import context
from steps.materializers import TrainedModelMaterializer
from steps.train.record import epoch_logger, log_train_config, log_training

CONFIG_FILE_ENV = "FERKIT_CONFIG_FILE"  # the run config file, logged as an artifact beside the resolved one


def _log_run_config(config: TrainConfig) -> None:
    """The resolved config as params, the whole run configuration and the config file as artifacts."""
    log_train_config(config)
    try:
        run_config = get_step_context().pipeline_run.config
        tracking.log_text(yaml.safe_dump(run_config.model_dump(mode="json"), sort_keys=False), "config/resolved.yaml")
        tracking.log_params(run_config.parameters or {}, prefix="pipeline")
    except RuntimeError:
        pass  # called outside a pipeline run (tests through entrypoint)
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and os.path.isfile(config_file):
        tracking.log_file(config_file, "config")


@step(output_materializers={"model": TrainedModelMaterializer}, experiment_tracker=context.TRACKER)
@context.stops_when_asked
def train_model(
    fer_dataset: FERDataset, class_weights: ClassWeights, config: TrainConfig, resume_dir: str | None = None
) -> Annotated[TrainedModel, ArtifactConfig(name="model", artifact_type=ArtifactType.MODEL)]:
    """Fit on train through the phases, pick the epoch with the best PublicTest (val) macro-F1.

    With `resume_dir` (or $FERKIT_RESUME_DIR) the state is saved every epoch; a rerun
    of an interrupted run with the same config and data continues from there.
    """
    _log_run_config(config)
    state = resume_path(resume_dir, config, fer_dataset, class_weights.as_list())
    if state is not None and state.is_file():
        print(f"train_model: resuming from the training state saved in {state} (`make train FRESH=1` starts over)")
    training = train_resumable(config, fer_dataset, class_weights.as_list(), resume_dir, callbacks=[epoch_logger])
    tracking.log_params(
        {
            "backbone": config.architecture_kwargs.get("backbone", config.architecture),
            "parameters": training.parameters,
            "train_images": len(fer_dataset.split("train")),
            "val_images": len(fer_dataset.split("val")),
        },
        prefix="model",
    )
    log_training(training)
    return training.model
