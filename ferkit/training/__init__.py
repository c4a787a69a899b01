"""Training a model over a data set: plain functions, callbacks for logging."""

from ferkit.training.loop import (
    AugmentSettings,
    FitResult,
    Phase,
    TrainConfig,
    fit,
    predict_proba,
    seed_everything,
    set_trainable,
)

__all__ = ["AugmentSettings", "FitResult", "Phase", "TrainConfig", "fit", "predict_proba", "seed_everything", "set_trainable"]
