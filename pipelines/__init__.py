"""ZenML pipelines, one per module: `zenml pipeline run <name> -c configs/<config>.yaml`.

The pipelines load on first use, so `pipelines.by_name` (imported at every start of the
project's Python) does not import zenml.
"""

from ferkit._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "pipelines.fer_batch_inference": ("fer_batch_inference",),
        "pipelines.fer_data_check": ("fer_data_check",),
        "pipelines.fer_retraining": ("fer_retraining",),
        "pipelines.fer_training": ("fer_training",),
    },
)
