"""Log the model to MLflow with its signature and register it as `fer_emotion`."""

import importlib.metadata
import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from zenml import step

import ferkit
from ferkit.data.labels import IMAGE_SIZE
from ferkit.models import TrainedModel
from steps import tracking

REGISTERED_MODEL_NAME = "fer_emotion"
# The logged model carries ferkit's source, so loading it needs only these.
_RUNTIME_REQUIREMENTS = ("torch", "numpy", "pandas<3", "pillow", "tqdm", "pydantic>=2", "scikit-learn")
_FERKIT_SOURCE = str(Path(ferkit.__file__).parent)


@step(enable_cache=False)
def register_model(
    model: TrainedModel,
    test_metrics: dict[str, float],
    registered_model_name: str = REGISTERED_MODEL_NAME,
) -> Annotated[str, "model_version"]:
    """Log with `mlflow.pytorch` (signature, input example) and register a new version.

    The version carries the test metrics as tags so the registry alone tells
    what a version scores.
    """
    if not tracking.active():
        raise RuntimeError(
            "register_model needs an active MLflow run: give the step the stack's MLflow "
            "experiment tracker (`experiment_tracker:` in the config) and run it in a pipeline"
        )
    network = model.build()
    example = np.random.default_rng(0).random((2, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    with torch.no_grad():
        probs = network(torch.from_numpy(example)).softmax(dim=1).numpy()
    info = mlflow.pytorch.log_model(
        network,
        name="model",
        signature=infer_signature(example, probs),
        input_example=example,
        code_paths=[_FERKIT_SOURCE],
        pip_requirements=[_pin(r) for r in _RUNTIME_REQUIREMENTS],
        registered_model_name=registered_model_name,
        metadata={"emotions": list(model.emotions), "input": "(B, 1, 48, 48) float32 in [0, 1]"},
    )
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "ferkit_model.pt"
        model.save(checkpoint)
        tracking.log_file(checkpoint, "checkpoint")
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for name, value in test_metrics.items():
        client.set_model_version_tag(registered_model_name, version, f"test.{name}", f"{value:.4f}")
    return version


def _pin(requirement: str) -> str:
    """'torch' -> 'torch==<installed version>'; requirements with a specifier stay as they are."""
    if any(c in requirement for c in "<>=!"):
        return requirement
    try:
        return f"{requirement}=={importlib.metadata.version(requirement)}"
    except importlib.metadata.PackageNotFoundError:
        return requirement
