"""Emotion classifiers: a small registry of architectures and a self-describing checkpoint.

Names load on first use, so `ferkit.models.views` (the TTA mode names) imports without torch.
"""

from ferkit._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ferkit.models.checkpoint": ("CheckpointError", "TrainedModel"),
        "ferkit.models.registry": ("available_models", "build_model", "register_model"),
    },
)
