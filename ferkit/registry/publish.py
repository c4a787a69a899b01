"""Log a trained model to MLflow, register it, and run the champion gate.

The register step of `fer_training` and the promote step of `fer_retraining` call
`register_and_promote` inside an MLflow run; everything is logged and tagged before
any alias moves, so a failure leaves the registry's aliases where they were.
"""

from __future__ import annotations

import importlib.metadata
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType
from PIL import Image

import ferkit
from ferkit.data.dataset import FERDataset
from ferkit.data.labels import IMAGE_SIZE
from ferkit.inference import evaluate
from ferkit.models import TrainedModel
from ferkit.registry import promotion, tracking
from ferkit.registry.decision import Gate, PromotionDecision, decide
from ferkit.registry.names import CHAMPION, DUPLICATE_OF, WEIGHTS_TAG, ZENML_VERSION_TAG

# The logged model carries ferkit's source, so loading it needs only these.
_RUNTIME_REQUIREMENTS = ("torch", "numpy", "pandas<3", "pillow", "tqdm", "pydantic>=2", "scikit-learn")
_FERKIT_SOURCE = str(Path(ferkit.__file__).parent)
_PYFUNC_SOURCE = str(Path(__file__).with_name("pyfunc_model.py"))
DEFAULT_GATE = Gate()  # fer_emotion, macro-F1 on test, any gain promotes


def register_and_promote(
    model: TrainedModel,
    test_metrics: dict[str, float],
    fer_dataset: FERDataset,
    gate: Gate = DEFAULT_GATE,
    extra_tags: dict[str, str] | None = None,
    zenml_version_id: str | None = None,
) -> str:
    """Register a new version of `gate.registered_model_name`, compare it with the `champion` on
    `gate.split`, and give it `champion` (it wins, or there is none) or `challenger`; returns the version.

    Weights registered already (a cached or repeated run) are not registered again: that
    version is returned, the run is tagged `registry.duplicate_of`, and no alias moves.
    `zenml_version_id` (the run's ZenML model version) gets the matching stage.
    """
    if not tracking.active():
        raise RuntimeError(
            "register_model needs an active MLflow run: run it in a pipeline on a stack with an "
            "MLflow experiment tracker (`make stack` sets one up)"
        )
    if gate.primary_metric not in test_metrics:
        raise ValueError(f"primary_metric {gate.primary_metric!r} is not among the test metrics {sorted(test_metrics)}")
    client, name = mlflow.MlflowClient(), gate.registered_model_name
    weights = model.weights_sha256()
    existing = version_with_weights(client, name, weights)
    if existing is not None:
        # Another copy would only crowd the registry and could push a real challenger aside.
        mlflow.set_tag(DUPLICATE_OF, f"{name}/{existing}")
        promotion.note_duplicate_in_zenml(zenml_version_id, name, existing)
        print(f"{name} v{existing} holds these weights already: nothing registered, no alias moved")
        return existing
    version = log_and_register(model, name)
    test_fingerprint = fer_dataset.split(gate.split).fingerprint
    tags = {f"test.{k}": f"{v:.6f}" for k, v in test_metrics.items()}
    tags.update({"test.fingerprint": test_fingerprint, WEIGHTS_TAG: weights, **(extra_tags or {})})
    if zenml_version_id:
        tags[ZENML_VERSION_TAG] = zenml_version_id
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    new_score = test_metrics[gate.primary_metric]
    decision = settle(client, version, new_score, gate, test_fingerprint,
                      lambda champion: score(champion, fer_dataset, gate.split, gate.primary_metric), zenml_version_id)  # fmt: skip
    print(f"{name} v{version}: {decision.alias} ({decision.reason})")
    return version


def settle(
    client: mlflow.MlflowClient,
    version: str,
    new_score: float,
    gate: Gate,
    test_fingerprint: str,
    rescore: Callable[[TrainedModel], float],
    zenml_version_id: str | None = None,
) -> PromotionDecision:
    """Compare `version` with the champion and move the aliases, as a compare-and-set.

    The first decision (which may re-score the champion: slow) is taken without the lock; then,
    holding `champion_lock`, the champion is read again and, when another run moved it
    meanwhile, the decision is taken again against the new one. The decision is recorded and
    the aliases move inside the lock, so of two runs finishing together the better one ends
    as champion whichever writes last.
    """
    name = gate.registered_model_name
    champion, decision, source = _decide(client, new_score, gate, test_fingerprint, rescore)
    with promotion.champion_lock(name):
        current = promotion.version_by_alias(client, name, CHAMPION)
        if not promotion.same_version(current, champion):
            champion, decision, source = _decide(client, new_score, gate, test_fingerprint, rescore)
            source += f"; decided again: the champion moved to v{current.version if current else '(none)'} meanwhile"
        promotion.record_decision(client, name, version, decision, source)
        promotion.mirror_to_zenml(zenml_version_id, decision.alias)
        promotion.move_aliases(client, name, version, decision.alias)  # last
    return decision


def _decide(
    client: mlflow.MlflowClient,
    new_score: float,
    gate: Gate,
    test_fingerprint: str,
    rescore: Callable[[TrainedModel], float],
) -> tuple[ModelVersion | None, PromotionDecision, str]:
    """(the champion compared with, the decision, where the champion's score came from); nothing is written."""
    metric = gate.primary_metric
    champion, champion_score, source = promotion.champion_score(
        client, gate.registered_model_name, metric, test_fingerprint, rescore
    )
    decision = decide(new_score, champion_score, metric, gate.min_improvement, gate.higher_is_better)
    return champion, decision, source


def score(model: TrainedModel, data: FERDataset, split: str, metric: str) -> float:
    """`metric` of `model` on `split`, computing only the views the metric needs:
    `tta.<mode>.<figure>` names its mode, anything else is the headline."""
    parts = metric.split(".")
    mode = parts[1] if len(parts) == 3 and parts[0] == "tta" else None
    result = evaluate(model, data, split=split, tta=mode, tta_modes=(), fit_temperature_on=None, bootstrap_resamples=10)
    return result.flat_metrics()[metric]


def version_with_weights(client: mlflow.MlflowClient, name: str, weights: str) -> str | None:
    """The oldest version of `name` tagged with these weights; None when there is none (or no `name`)."""
    try:
        versions = client.search_model_versions(f"name = '{name}' and tags.`{WEIGHTS_TAG}` = '{weights}'")
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return str(min(int(v.version) for v in versions)) if versions else None


def log_and_register(model: TrainedModel, name: str) -> str:
    """Log the network with `mlflow.pytorch`, the ferkit checkpoint, and register the pyfunc wrapper
    (faces in, labels out) as a new version of `name`."""
    requirements = [_pin(r) for r in _RUNTIME_REQUIREMENTS]
    _log_network(model, requirements)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "ferkit_model.pt"
        model.save(checkpoint)
        tracking.log_file(checkpoint, "checkpoint")
        face = Image.fromarray((np.random.default_rng(1).random((48, 48)) * 255).astype(np.uint8))
        buffer = io.BytesIO()
        face.save(buffer, format="PNG")
        signature = ModelSignature(
            inputs=Schema(
                [
                    # Any type: the model checks each row itself and names what is wrong in that row
                    # (bytes that are no image or no base64, a 1-D list, ragged rows), where a typed
                    # column would fail the whole request, and a row without an image would too.
                    ColSpec(AnyType(), "image", required=False),
                    ColSpec(AnyType(), "pixels", required=False),
                    ColSpec("string", "pixel_range", required=False),
                ]
            ),
            outputs=Schema(
                [ColSpec("string", "label")]
                + [ColSpec("double", e) for e in model.emotions]
                + [ColSpec("string", "error")]
            ),
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
            metadata={
                "emotions": list(model.emotions),
                "input": "per row: 'image' (encoded image bytes) or 'pixels' (2-D grayscale array, whole numbers "
                "0-255, or [0, 1] with pixel_range '0-1')",
                "output": "per row: label, the seven probabilities, and error ('' when the row was predicted)",
            },
        )
    return str(info.registered_model_version)


def _log_network(model: TrainedModel, requirements: list[str]) -> None:
    network = model.build()
    example = np.random.default_rng(0).random((2, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    with torch.no_grad():
        probs = network(torch.from_numpy(example)).softmax(dim=1).numpy()
    mlflow.pytorch.log_model(
        network,
        name="pytorch_model",
        signature=infer_signature(example, probs),
        input_example=example,
        code_paths=[_FERKIT_SOURCE],
        pip_requirements=requirements,
        metadata={"emotions": list(model.emotions), "input": "(B, 1, 48, 48) float32 in [0, 1]"},
    )


def _pin(requirement: str) -> str:
    """'torch' -> 'torch==<installed version>'; requirements with a specifier stay as they are."""
    if any(c in requirement for c in "<>=!"):
        return requirement
    try:
        return f"{requirement}=={importlib.metadata.version(requirement)}"
    except importlib.metadata.PackageNotFoundError:
        return requirement
