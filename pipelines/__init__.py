"""ZenML pipelines; `zenml pipeline run pipelines.<name> -c configs/<config>.yaml`."""

from pipelines.fer_batch_inference import fer_batch_inference
from pipelines.fer_data_check import fer_data_check
from pipelines.fer_retraining import fer_retraining
from pipelines.fer_training import fer_training

__all__ = ["fer_batch_inference", "fer_data_check", "fer_retraining", "fer_training"]
