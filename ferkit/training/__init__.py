"""Training a model over a data set: plain functions, callbacks for logging."""

from ferkit.training.loop import AugmentSettings, FitResult, TrainConfig, fit, predict_proba, seed_everything

__all__ = ["AugmentSettings", "FitResult", "TrainConfig", "fit", "predict_proba", "seed_everything"]
