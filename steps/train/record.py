"""What the training and retraining steps log about a training: its config, figures and curves."""

from __future__ import annotations

from ferkit.metrics.curves import training_curves_png
from ferkit.registry import tracking
from ferkit.training import TrainConfig, Training


def log_train_config(config: TrainConfig) -> None:
    """The resolved config (precision as it trains here) as `train.*` params, one `train.phase<i>.*`
    group per phase. `train.epochs` is the epochs configured over all phases; with phases the
    single-phase fields (`optimizer`, `lr`) are left out: each phase's group says its own."""
    params = {k: v for k, v in config.recipe().items() if k != "phases"}
    if config.phases:
        del params["optimizer"], params["lr"]
    params["epochs"] = config.total_epochs
    tracking.log_params(params, prefix="train")
    for i, phase in enumerate(config.resolved_phases()):
        tracking.log_params(phase.model_dump(), prefix=f"train.phase{i}")


def log_training(training: Training) -> None:
    """The epochs trained, the chosen one, its val macro-F1 and the time as `train.*` metrics; why the
    training ended as `train.ended_by` (`all epochs` of its plan, `train.budget.epochs` under a time
    budget and `train.epochs` otherwise; `early stopping`; `time budget`: its deadline came first;
    `deadline`: the config's deadline cut the schedule's tail);
    the time budget's plan as `train.budget.*` params; the curves as a PNG."""
    result = training.result
    tracking.log_metrics(
        {
            "epochs_trained": result.epochs_trained,
            "best_epoch": result.best_epoch,
            "best_val_macro_f1": result.best_val_macro_f1,
            "seconds": result.seconds,
        },
        prefix="train",
    )
    tracking.log_params({"ended_by": result.ended_by}, prefix="train")
    if training.budget is not None:  # the epochs the time budget allowed, and the speeds measured
        tracking.log_params(training.budget.as_dict(), prefix="train.budget")
    with tracking.ArtifactDir("training") as folder:
        training_curves_png(result.history, folder / "training_curves.png")


def epoch_logger(epoch: int, metrics: dict[str, float]) -> None:
    """The training loop's callback: each epoch's figures as MLflow metrics at that step."""
    tracking.log_metrics(metrics, step=epoch)
