"""ZenML pipelines; `zenml pipeline run pipelines.fer_training -c configs/<name>.yaml`."""

from pipelines.fer_training import fer_training

__all__ = ["fer_training"]
