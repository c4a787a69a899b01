"""Training a model over a data set: typed config, one epoch, the phases, and `train` on top."""

from ferkit.models.predict import predict_proba
from ferkit.runtime import seed_everything
from ferkit.training.config import AugmentSettings, Phase, TrainConfig
from ferkit.training.epoch import set_trainable
from ferkit.training.loop import FitResult, fit
from ferkit.training.train import Training, train

__all__ = [
    "AugmentSettings",
    "FitResult",
    "Phase",
    "TrainConfig",
    "Training",
    "fit",
    "predict_proba",
    "seed_everything",
    "set_trainable",
    "train",
]
