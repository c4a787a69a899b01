"""Warm-start from the champion's weights and fine-tune on the merged data."""

from typing import Annotated

from zenml import ArtifactConfig, step
from zenml.enums import ArtifactType

from ferkit.data.dataset import FERDataset
from ferkit.data.weights import ClassWeights
from ferkit.metrics.curves import training_curves_png
from ferkit.models import TrainedModel
from ferkit.training import TrainConfig, fit, seed_everything
from steps import tracking
from steps.materializers import TrainedModelMaterializer

# What a fine-tune changes by default: a short, gentle schedule from the champion's weights.
DEFAULT_OVERRIDES = {
    "phases": [{"name": "finetune", "epochs": 6, "lr": 3e-4, "optimizer": "adamw", "schedule": "cosine",
                "trainable": ["all"]}],
}


def retrain_config(champion: TrainedModel, overrides: dict) -> TrainConfig:
    """The champion's recipe with `overrides`; the architecture must stay the champion's."""
    for key in ("architecture", "architecture_kwargs"):
        if key in overrides and overrides[key] != champion.recipe.get(key, getattr(champion, key)):
            raise ValueError(f"retraining warm-starts from the champion, so `{key}` cannot change "
                             f"({champion.recipe.get(key)!r} -> {overrides[key]!r}); train anew with fer_training")
    recipe = {k: v for k, v in champion.recipe.items() if k in TrainConfig.model_fields}
    return TrainConfig(**{**recipe, **overrides})


@step(output_materializers={"model": TrainedModelMaterializer})
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
    config = retrain_config(champion, DEFAULT_OVERRIDES if overrides is None else overrides)
    tracking.log_params(config.model_dump(exclude={"phases"}), prefix="train")
    for i, phase in enumerate(config.resolved_phases()):
        tracking.log_params(phase.model_dump(), prefix=f"train.phase{i}")
    train, val = merged_dataset.split("train"), merged_dataset.split("val")
    seed_everything(config.seed)
    network = champion.build()  # the warm start
    result = fit(network, train.images, train.labels, val.images, val.labels, config,
                 class_weights=class_weights.as_list(),
                 callbacks=[lambda epoch, metrics: tracking.log_metrics(metrics, step=epoch)])
    tracking.log_metrics({"best_epoch": result.best_epoch, "best_val_macro_f1": result.best_val_macro_f1,
                          "seconds": result.seconds}, prefix="train")
    with tracking.ArtifactDir("training") as folder:
        training_curves_png(result.history, folder / "training_curves.png")
    return TrainedModel(
        architecture=champion.architecture,
        architecture_kwargs=dict(champion.architecture_kwargs),
        state_dict=result.state_dict,
        emotions=champion.emotions,
        recipe={**config.model_dump(mode="json"), "warm_start": True},
        history=result.history,
    )
