"""Train the configured architecture through its phases; per-epoch metrics go to MLflow through a callback."""

import hashlib
import os
from pathlib import Path
from typing import Annotated

import yaml
from zenml import ArtifactConfig, get_step_context, step
from zenml.enums import ArtifactType

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.data.weights import ClassWeights
from ferkit.metrics.curves import training_curves_png
from ferkit.models import TrainedModel, build_model
from ferkit.training import TrainConfig, fit, seed_everything
from steps import tracking
from steps.materializers import TrainedModelMaterializer

CONFIG_FILE_ENV = "FERKIT_CONFIG_FILE"
RESUME_DIR_ENV = "FERKIT_RESUME_DIR"


def _log_run_config(config: TrainConfig) -> None:
    """The resolved config as params, the whole run configuration and the config file as artifacts."""
    tracking.log_params(config.model_dump(exclude={"phases"}), prefix="train")
    for i, phase in enumerate(config.resolved_phases()):
        tracking.log_params(phase.model_dump(), prefix=f"train.phase{i}")
    try:
        run_config = get_step_context().pipeline_run.config
        tracking.log_text(yaml.safe_dump(run_config.model_dump(mode="json"), sort_keys=False), "config/resolved.yaml")
        tracking.log_params(run_config.parameters or {}, prefix="pipeline")
    except RuntimeError:
        pass  # called outside a pipeline run (tests through entrypoint)
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and os.path.isfile(config_file):
        tracking.log_file(config_file, "config")


def resume_checkpoint_path(resume_dir: str | None, config: TrainConfig, data: FERDataset,
                           class_weights: ClassWeights) -> Path | None:
    """Where this exact training (config, data, weights) keeps its resumable state; None disables resume."""
    root = resume_dir or os.environ.get(RESUME_DIR_ENV)
    if not root:
        return None
    key = hashlib.sha256(
        f"{config.fingerprint()}|{data.fingerprint}|{class_weights.as_list()}".encode()
    ).hexdigest()[:20]
    return Path(root) / f"train-{key}.pt"


@step(output_materializers={"model": TrainedModelMaterializer})
def train_model(
    fer_dataset: FERDataset,
    class_weights: ClassWeights,
    config: TrainConfig,
    resume_dir: str | None = None,
) -> Annotated[TrainedModel, ArtifactConfig(name="model", artifact_type=ArtifactType.MODEL)]:
    """Fit on train through the phases, pick the epoch with the best PublicTest (val) macro-F1.

    With `resume_dir` (or $FERKIT_RESUME_DIR) the state is saved every epoch; a rerun
    of an interrupted run with the same config and data continues from there.
    """
    _log_run_config(config)
    train, val = fer_dataset.split("train"), fer_dataset.split("val")
    seed_everything(config.seed)  # the initial weights belong to the seeded run too
    model = build_model(config.architecture, **config.architecture_kwargs)
    tracking.log_params(
        {"backbone": config.architecture_kwargs.get("backbone", config.architecture),
         "parameters": sum(p.numel() for p in model.parameters()),
         "train_images": len(train), "val_images": len(val)},
        prefix="model",
    )
    checkpoint = resume_checkpoint_path(resume_dir, config, fer_dataset, class_weights)
    if checkpoint is not None:
        # The finished state of this exact training stays until the next training starts, so a run that
        # fails after training (materializing, evaluating) loses nothing; older states go now.
        for other in checkpoint.parent.glob("train-*.pt"):
            if other != checkpoint:
                other.unlink(missing_ok=True)
    result = fit(
        model,
        train.images,
        train.labels,
        val.images,
        val.labels,
        config,
        class_weights=class_weights.as_list(),
        callbacks=[lambda epoch, metrics: tracking.log_metrics(metrics, step=epoch)],
        checkpoint_path=checkpoint,
    )
    tracking.log_metrics(
        {"best_epoch": result.best_epoch, "best_val_macro_f1": result.best_val_macro_f1, "seconds": result.seconds},
        prefix="train",
    )
    with tracking.ArtifactDir("training") as folder:
        training_curves_png(result.history, folder / "training_curves.png")
    return TrainedModel(
        architecture=config.architecture,
        architecture_kwargs=dict(config.architecture_kwargs),
        state_dict=result.state_dict,
        emotions=EMOTIONS,
        recipe=config.model_dump(mode="json"),
        history=result.history,
    )
