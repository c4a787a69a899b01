"""Class weights from the training split, after the quality gate's policy."""

from typing import Annotated

from zenml import step

from ferkit.data.dataset import FERDataset
from ferkit.data.weights import ClassWeights, WeightMethod, class_weights
from ferkit.registry import tracking
from steps import context


@step(experiment_tracker=context.TRACKER)
@context.stops_when_asked
def compute_class_weights(
    fer_dataset: FERDataset, method: WeightMethod = "inverse_frequency", beta: float = 0.999, power: float = 1.0
) -> Annotated[ClassWeights, "class_weights"]:
    """Inverse frequency `(N / (K * n_c)) ** power` (default, power 1) or effective number of
    samples per emotion."""
    weights = class_weights(fer_dataset.split("train").labels, method=method, beta=beta, power=power)
    tracking.log_text(weights.table(), "class_weights.csv")
    tracking.log_metrics(weights.weights, prefix="class_weight")
    tracking.log_params({"method": method, "beta": weights.beta, "power": weights.power}, prefix="class_weights")
    return weights
