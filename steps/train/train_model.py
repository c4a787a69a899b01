"""Train the configured architecture; per-epoch metrics go to MLflow through a callback."""

import os
from typing import Annotated

import yaml
from zenml import ArtifactConfig, get_step_context, step

from ferkit.data.dataset import FERDataset
from ferkit.data.weights import ClassWeights
from ferkit.data.labels import EMOTIONS
from ferkit.models import TrainedModel, build_model
from ferkit.training import TrainConfig, fit, seed_everything
from steps import tracking
from steps.materializers import TrainedModelMaterializer

CONFIG_FILE_ENV = "FERKIT_CONFIG_FILE"


def _log_run_config(config: TrainConfig) -> None:
    """The resolved config as params, the whole run configuration and the config file as artifacts."""
    tracking.log_params(config.model_dump(), prefix="train")
    try:
        run_config = get_step_context().pipeline_run.config
        tracking.log_text(yaml.safe_dump(run_config.model_dump(mode="json"), sort_keys=False), "config/resolved.yaml")
        tracking.log_params(run_config.parameters or {}, prefix="pipeline")
    except RuntimeError:
        pass  # called outside a pipeline run (tests through entrypoint)
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and os.path.isfile(config_file):
        tracking.log_file(config_file, "config")


@step(output_materializers={"model": TrainedModelMaterializer})
def train_model(
    fer_dataset: FERDataset,
    class_weights: ClassWeights,
    config: TrainConfig,
) -> Annotated[TrainedModel, ArtifactConfig(name="model", is_model_artifact=True)]:
    """Fit on train, pick the epoch with the best PublicTest (val) macro-F1."""
    _log_run_config(config)
    train, val = fer_dataset.split("train"), fer_dataset.split("val")
    seed_everything(config.seed)  # the initial weights belong to the seeded run too
    model = build_model(config.architecture, **config.architecture_kwargs)
    tracking.log_params(
        {"backbone": config.architecture, "parameters": sum(p.numel() for p in model.parameters()),
         "train_images": len(train), "val_images": len(val)},
        prefix="model",
    )
    result = fit(
        model,
        train.images,
        train.labels,
        val.images,
        val.labels,
        config,
        class_weights=class_weights.as_list(),
        callbacks=[lambda epoch, metrics: tracking.log_metrics(metrics, step=epoch)],
    )
    tracking.log_metrics(
        {"best_epoch": result.best_epoch, "best_val_macro_f1": result.best_val_macro_f1, "seconds": result.seconds},
        prefix="train",
    )
    return TrainedModel(
        architecture=config.architecture,
        architecture_kwargs=dict(config.architecture_kwargs),
        state_dict=result.state_dict,
        emotions=EMOTIONS,
        recipe=config.model_dump(mode="json"),
        history=result.history,
    )
