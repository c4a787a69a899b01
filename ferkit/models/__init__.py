"""Emotion classifiers: a small registry of architectures and a self-describing checkpoint."""

from ferkit.models.checkpoint import CheckpointError, TrainedModel
from ferkit.models.registry import available_models, build_model, register_model

# Importing the module registers its architectures.
from ferkit.models import cnn, hybrid  # noqa: F401,E402

__all__ = ["CheckpointError", "TrainedModel", "available_models", "build_model", "register_model"]
