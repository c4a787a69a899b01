"""Inverse-frequency class weights from the training split."""

from typing import Annotated

from zenml import step

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.data.weights import inverse_frequency_weights
from steps import tracking


@step
def compute_class_weights(fer_dataset: FERDataset) -> Annotated[dict[str, float], "class_weights"]:
    """`N / (K * n_c)` per emotion on the train split, keyed by emotion name."""
    train = fer_dataset.split("train")
    weights = inverse_frequency_weights(train.labels)
    class_weights = {name: float(w) for name, w in zip(EMOTIONS, weights)}
    counts = train.class_counts()
    table = "emotion,train_images,weight\n" + "".join(
        f"{name},{counts[name]},{class_weights[name]:.4f}\n" for name in EMOTIONS
    )
    tracking.log_text(table, "class_weights.csv")
    tracking.log_metrics(class_weights, prefix="class_weight")
    return class_weights
