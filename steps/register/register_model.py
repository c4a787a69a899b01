"""Log the model to MLflow, register it as `fer_emotion`, and run the promotion gate."""

import importlib.metadata
import io
import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array
from PIL import Image
from zenml import get_step_context, step

import ferkit
from ferkit.data.dataset import FERDataset
from ferkit.data.labels import IMAGE_SIZE
from ferkit.inference import evaluate
from ferkit.inference.promotion import decide
from ferkit.models import TrainedModel
from steps import tracking
from steps.register import promotion

REGISTERED_MODEL_NAME = "fer_emotion"
WEIGHTS_TAG = "model.weights_sha256"  # TrainedModel.weights_sha256(): the same weights are registered once
DATA_ARTIFACT_TAG = "data.artifact_version_id"  # the ZenML artifact of the data a version trained on
# The logged model carries ferkit's source, so loading it needs only these.
_RUNTIME_REQUIREMENTS = ("torch", "numpy", "pandas<3", "pillow", "tqdm", "pydantic>=2", "scikit-learn")
_FERKIT_SOURCE = str(Path(ferkit.__file__).parent)
_PYFUNC_SOURCE = str(Path(__file__).with_name("pyfunc_model.py"))


@step(enable_cache=False)
def register_model(
    model: TrainedModel,
    test_metrics: dict[str, float],
    fer_dataset: FERDataset,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    primary_metric: str = "macro_f1",
    min_improvement: float = 0.0,
    split: str = "test",
) -> Annotated[str, "model_version"]:
    """Register a new version, compare it with the `champion` on the same test split, and
    give it `champion` (it wins, or there is none) or `challenger`. A model whose weights are
    registered already (a cached or repeated run) is not registered again; that version is returned.

    Everything is logged and tagged before any alias moves, so a failure leaves the
    registry's aliases where they were. The ZenML model version gets the matching
    stage (production / staging).
    """
    return register_and_promote(model, test_metrics, fer_dataset, registered_model_name, primary_metric,
                                min_improvement, split, data_tags("fer_dataset", fer_dataset))


def data_tags(input_name: str, data: FERDataset) -> dict[str, str]:
    """Which data trained the model: its fingerprint and, inside a step, its ZenML artifact version."""
    tags = {"data.fingerprint": data.fingerprint, "data.train_images": str(len(data.split("train")))}
    try:
        tags[DATA_ARTIFACT_TAG] = str(get_step_context().inputs[input_name][0].id)
    except (RuntimeError, KeyError, IndexError, AttributeError):
        pass  # outside a pipeline run
    return tags


def register_and_promote(
    model: TrainedModel,
    test_metrics: dict[str, float],
    fer_dataset: FERDataset,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    primary_metric: str = "macro_f1",
    min_improvement: float = 0.0,
    split: str = "test",
    extra_tags: dict[str, str] | None = None,
) -> str:
    """The register step's work, shared with the retraining pipeline; returns the new version."""
    if not tracking.active():
        raise RuntimeError(
            "register_model needs an active MLflow run: give the step the stack's MLflow "
            "experiment tracker (`experiment_tracker:` in the config) and run it in a pipeline"
        )
    if primary_metric not in test_metrics:
        raise ValueError(f"primary_metric {primary_metric!r} is not among the test metrics {sorted(test_metrics)}")
    client = mlflow.MlflowClient()
    weights = model.weights_sha256()
    existing = version_with_weights(client, registered_model_name, weights)
    if existing is not None:
        # Another copy would only crowd the registry and could push a real challenger aside.
        mlflow.set_tag(promotion.DUPLICATE_OF, f"{registered_model_name}/{existing}")
        promotion.note_duplicate_in_zenml(_zenml_model_version_id(), registered_model_name, existing)
        print(f"{registered_model_name} v{existing} holds these weights already: nothing registered, no alias moved")
        return existing
    version = _log_and_register(model, registered_model_name)
    test_fingerprint = fer_dataset.split(split).fingerprint
    tags = {f"test.{k}": f"{v:.6f}" for k, v in test_metrics.items()}
    tags["test.fingerprint"] = test_fingerprint
    tags[WEIGHTS_TAG] = weights
    tags.update(extra_tags or {})
    zenml_version_id = _zenml_model_version_id()
    if zenml_version_id:
        tags[promotion.ZENML_VERSION_TAG] = zenml_version_id
    for key, value in tags.items():
        client.set_model_version_tag(registered_model_name, version, key, value)

    def rescore(checkpoint: Path) -> float:
        champion = TrainedModel.load(checkpoint)
        # Only the views the metric needs: `tta.<mode>.<figure>` names its mode, else the headline.
        parts = primary_metric.split(".")
        mode = parts[1] if len(parts) == 3 and parts[0] == "tta" else None
        result = evaluate(champion, fer_dataset, split=split, tta=mode, tta_modes=(), fit_temperature_on=None,
                          bootstrap_resamples=10)
        return result.flat_metrics()[primary_metric]

    champion, champion_score, source = promotion.champion_score(
        client, registered_model_name, primary_metric, test_fingerprint, rescore
    )
    decision = decide(test_metrics[primary_metric], champion_score, primary_metric, min_improvement,
                      higher_is_better=not primary_metric.endswith("log_loss"))
    promotion.record_decision(client, registered_model_name, version, decision, source)
    promotion.mirror_to_zenml(zenml_version_id, decision.alias)
    promotion.move_aliases(client, registered_model_name, version, decision.alias)  # last
    print(f"{registered_model_name} v{version}: {decision.alias} ({decision.reason})")
    return version


def version_with_weights(client: mlflow.MlflowClient, name: str, weights: str) -> str | None:
    """The oldest version of `name` tagged with these weights; None when there is none (or no `name`)."""
    try:
        versions = client.search_model_versions(f"name = '{name}' and tags.`{WEIGHTS_TAG}` = '{weights}'")
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return str(min(int(v.version) for v in versions)) if versions else None


def _log_and_register(model: TrainedModel, name: str) -> str:
    """Log the network with `mlflow.pytorch` and register the pyfunc wrapper (faces in, labels out)."""
    network = model.build()
    example = np.random.default_rng(0).random((2, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    with torch.no_grad():
        probs = network(torch.from_numpy(example)).softmax(dim=1).numpy()
    requirements = [_pin(r) for r in _RUNTIME_REQUIREMENTS]
    mlflow.pytorch.log_model(
        network,
        name="pytorch_model",
        signature=infer_signature(example, probs),
        input_example=example,
        code_paths=[_FERKIT_SOURCE],
        pip_requirements=requirements,
        metadata={"emotions": list(model.emotions), "input": "(B, 1, 48, 48) float32 in [0, 1]"},
    )
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "ferkit_model.pt"
        model.save(checkpoint)
        tracking.log_file(checkpoint, "checkpoint")
        face = Image.fromarray((np.random.default_rng(1).random((48, 48)) * 255).astype(np.uint8))
        buffer = io.BytesIO()
        face.save(buffer, format="PNG")
        signature = ModelSignature(
            inputs=Schema([ColSpec("binary", "image", required=False),
                           ColSpec(Array(Array(DataType.long)), "pixels", required=False)]),
            outputs=Schema([ColSpec("string", "label")] + [ColSpec("double", e) for e in model.emotions]),
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_PYFUNC_SOURCE,
            artifacts={"checkpoint": str(checkpoint)},
            code_paths=[_FERKIT_SOURCE],
            pip_requirements=requirements,
            signature=signature,
            input_example=pd.DataFrame({"image": [buffer.getvalue()]}),
            registered_model_name=name,
            metadata={"emotions": list(model.emotions),
                      "input": "per row: 'image' (encoded image bytes) or 'pixels' (2-D 0-255 grayscale array)"},
        )
    return str(info.registered_model_version)


def _zenml_model_version_id() -> str | None:
    try:
        model = get_step_context().model
    except (RuntimeError, ValueError):
        return None
    return str(model.id) if model is not None else None


def _pin(requirement: str) -> str:
    """'torch' -> 'torch==<installed version>'; requirements with a specifier stay as they are."""
    if any(c in requirement for c in "<>=!"):
        return requirement
    try:
        return f"{requirement}=={importlib.metadata.version(requirement)}"
    except importlib.metadata.PackageNotFoundError:
        return requirement
