"""ZenML pipelines; `zenml pipeline run pipelines.<name> -c configs/<config>.yaml`."""

from pipelines.fer_batch_inference import fer_batch_inference
from pipelines.fer_training import fer_training

__all__ = ["fer_batch_inference", "fer_training"]
