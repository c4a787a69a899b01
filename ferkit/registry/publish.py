"""Log a trained model to MLflow, register it, and run the champion gate.

The register step of `fer_training` and the promote step of `fer_retraining` call
`register_and_promote` inside an MLflow run; everything is logged and tagged before
any alias moves, so a failure leaves the registry's aliases where they were. The gate
compares challenger and champion on the selection split (val) with a paired bootstrap;
the test split's figures are tagged for reporting and never decide.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType
from PIL import Image

import ferkit
from ferkit.data.dataset import FERDataset
from ferkit.data.labels import IMAGE_SIZE
from ferkit.inference.evaluation import SplitProbabilities, gate_views, probabilities_for
from ferkit.inference.faces import MIN_CONFIDENCE
from ferkit.metrics.classification import classification_metrics
from ferkit.metrics.paired import figure_of, paired_bootstrap
from ferkit.models import TrainedModel
from ferkit.registry import promotion, tracking
from ferkit.registry.decision import Gate, PromotionDecision, PromotionError, decide
from ferkit.registry.names import CHAMPION, DUPLICATE_OF, GATE_PENDING, WEIGHTS_TAG, ZENML_VERSION_TAG
from ferkit.registry.store import ModelNotFound, fetch_checkpoint

# The logged model carries ferkit's source, so loading it needs only these.
_RUNTIME_REQUIREMENTS = ("torch", "numpy", "pandas<3", "pillow", "tqdm", "pydantic>=2", "scikit-learn")
_FERKIT_SOURCE = str(Path(ferkit.__file__).parent)
_PYFUNC_SOURCE = str(Path(__file__).with_name("pyfunc_model.py"))
DEFAULT_GATE = Gate()  # fer_emotion, macro-F1 on val, a gain whose 95% lower bound is above 0 promotes


@dataclass(frozen=True)
class GateImages:
    """The images challenger and champion are both scored on: the selection split, and in retraining
    the held-out new images too. The test split is never among them."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,)
    fingerprint: str  # of the split (and held-out images) they came from
    description: str  # "val (3589 images)", for tags and logs

    @classmethod
    def of(cls, data: FERDataset, split: str, holdout: FERDataset | None = None) -> GateImages:
        part = data.split(split)
        if holdout is not None and len(holdout):
            images = np.concatenate([part.images, holdout.images])
            labels = np.concatenate([part.labels, holdout.labels])
            fingerprint = hashlib.sha256(f"{part.fingerprint}|{holdout.fingerprint}".encode()).hexdigest()[:16]
            return cls(images, labels, fingerprint, f"{split} + held-out new images ({len(labels)} images)")
        if len(part) == 0:
            raise ValueError(f"the {split!r} split is empty: the champion gate has no images to compare on")
        return cls(part.images, part.labels, part.fingerprint, f"{split} ({len(part)} images)")


def register_and_promote(
    model: TrainedModel,
    test_metrics: dict[str, float],
    fer_dataset: FERDataset,
    gate: Gate = DEFAULT_GATE,
    extra_tags: dict[str, str] | None = None,
    zenml_version_id: str | None = None,
    holdout: FERDataset | None = None,
    scored: SplitProbabilities | None = None,
) -> str:
    """Register a new version of `gate.registered_model_name`, compare it with the `champion` on the
    gate's images (`gate.split`, plus `holdout`), and give it `champion` (it wins, or there is none)
    or `challenger`; returns the version.

    `test_metrics` (PrivateTest) are tagged on the version for reporting and never read by the
    decision. Weights registered already (a cached or repeated run) are not registered again:
    that version is returned, the run is tagged `registry.duplicate_of`, and no alias moves;
    unless the run that registered them stopped before the gate moved the aliases (the version
    still carries `promotion.pending`): then this run decides that version.
    `zenml_version_id` (the run's ZenML model version) gets the matching stage. `scored` (the
    evaluation's probabilities) stands in for scoring the new model on the gate's images when they
    are this model's on these images with the gate's views; otherwise the gate scores it.
    """
    if not tracking.active():
        raise RuntimeError(
            "register_model needs an active MLflow run: run it in a pipeline on a stack with an "
            "MLflow experiment tracker (`make stack` sets one up)"
        )
    figure_of(gate.primary_metric)  # a metric the paired test can compare, before anything is written
    client, name = mlflow.MlflowClient(), gate.registered_model_name
    weights = model.weights_sha256()
    existing = version_with_weights(client, name, weights)
    unfinished = existing is not None and GATE_PENDING in client.get_model_version(name, existing).tags
    if existing is not None and not unfinished:
        # Another copy would only crowd the registry and could push a real challenger aside.
        _note_duplicate(name, existing, zenml_version_id)
        print(f"{name} v{existing} holds these weights already: nothing registered, no alias moved")
        return existing
    on = GateImages.of(fer_dataset, gate.split, holdout)
    if scored is not None and scored.serves(on.fingerprint, weights, gate_views(model, gate.primary_metric)):
        probs = scored.probs
        print(f"gate: the new model's probabilities on {on.description} come from its evaluation (same views)")
    else:
        probs = probabilities_for(model, on.images, gate.primary_metric)
    new_score = classification_metrics(on.labels, probs)[figure_of(gate.primary_metric)]
    if unfinished:  # registered by a run that stopped before its aliases moved: this run decides it
        version = existing
        print(f"{name} v{version} holds these weights, but the run that registered them stopped before the "
              "champion gate finished: deciding it now")  # fmt: skip
    else:
        version = log_and_register(model, name)
    tags = {f"test.{k}": f"{v:.6f}" for k, v in test_metrics.items()}
    tags["test.fingerprint"] = fer_dataset.split("test").fingerprint
    tags.update({f"gate.{gate.primary_metric}": f"{new_score:.6f}", "gate.images": on.description,
                 "gate.fingerprint": on.fingerprint, WEIGHTS_TAG: weights, **(extra_tags or {})})  # fmt: skip
    if zenml_version_id:
        tags[ZENML_VERSION_TAG] = zenml_version_id
    tags[GATE_PENDING] = "the champion gate has not moved this version's aliases yet"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    tracking.log_metrics({f"gate.{gate.primary_metric}": new_score})
    held = client.get_model_version(name, version).aliases
    if unfinished and held:  # stopped after its aliases moved, before the tag went: decided already
        client.delete_model_version_tag(name, version, GATE_PENDING)
        print(f"{name} v{version}: {', '.join(held)} (decided by the run that registered it)")
        return version

    def champion_probs(champion: ModelVersion) -> np.ndarray:
        try:
            checkpoint = fetch_checkpoint(champion.run_id, f"champion {name} v{champion.version}")
        except ModelNotFound as exc:
            raise PromotionError(f"{exc}; the gate scores the champion on the same images as the new model") from exc
        return probabilities_for(checkpoint, on.images, gate.primary_metric)

    try:
        decision = settle(client, version, gate, on, probs, champion_probs, zenml_version_id)
    except RegisteredMeanwhile as meanwhile:  # an identical run registered them first, after our check
        _note_duplicate(name, meanwhile.version, zenml_version_id)
        print(f"{name} v{meanwhile.version} got these weights while this run registered them: v{version} "
              "withdrawn, no alias moved")  # fmt: skip
        return meanwhile.version
    print(f"{name} v{version}: {decision.alias} ({decision.reason})")
    return version


class RegisteredMeanwhile(Exception):
    """An older version holds the weights just registered (two identical runs finished together)."""

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.version = version


def _note_duplicate(name: str, version: str, zenml_version_id: str | None) -> None:
    mlflow.set_tag(DUPLICATE_OF, f"{name}/{version}")
    promotion.note_duplicate_in_zenml(zenml_version_id, name, version)


def settle(
    client: mlflow.MlflowClient,
    version: str,
    gate: Gate,
    on: GateImages,
    probs: np.ndarray,
    champion_probs: Callable[[ModelVersion], np.ndarray],
    zenml_version_id: str | None = None,
) -> PromotionDecision:
    """Compare `version` (its probabilities `probs` on the gate's images) with the champion, scored
    by `champion_probs` on the same images, and move the aliases as a compare-and-set.

    The first comparison (scoring the champion: slow) runs without the lock; then, holding
    `champion_lock`, the champion is read again and, when another run moved it meanwhile, the
    comparison runs again against the new one. The decision is recorded and the aliases move
    inside the lock, so of two runs finishing together the better one ends as champion
    whichever writes last. The check for registered weights ran outside the lock: when an older
    version holds the same weights now (an identical run got there between check and registration),
    `version` is deleted, inside the lock, and `RegisteredMeanwhile` names the older one.
    """
    name = gate.registered_model_name
    champion = promotion.version_by_alias(client, name, CHAMPION)
    decision = _compare(champion, gate, on, probs, champion_probs)
    with promotion.champion_lock(name):
        weights = client.get_model_version(name, version).tags.get(WEIGHTS_TAG)
        first = version_with_weights(client, name, weights) if weights else None
        if first is not None and int(first) < int(version):
            client.delete_model_version(name, version)  # no alias ever pointed at it: aliases move only here
            raise RegisteredMeanwhile(first)
        current = promotion.version_by_alias(client, name, CHAMPION)
        source = _compared_with(champion, on)
        if not promotion.same_version(current, champion):
            decision = _compare(current, gate, on, probs, champion_probs)
            source = _compared_with(current, on) + f"; decided again: the champion moved from {_label(champion)}"
        promotion.record_decision(client, name, version, decision, source)
        promotion.mirror_to_zenml(zenml_version_id, decision.alias)
        promotion.move_aliases(client, name, version, decision.alias)
        client.delete_model_version_tag(name, version, GATE_PENDING)  # last: the gate has finished
    return decision


def _compare(
    champion: ModelVersion | None,
    gate: Gate,
    on: GateImages,
    probs: np.ndarray,
    champion_probs: Callable[[ModelVersion], np.ndarray],
) -> PromotionDecision:
    """The decision against `champion` (none: the first model wins); nothing is written."""
    new_score = classification_metrics(on.labels, probs)[figure_of(gate.primary_metric)]
    if champion is None:
        return decide(new_score, None, gate.primary_metric, gate.min_improvement)
    comparison = paired_bootstrap(on.labels, probs, champion_probs(champion), gate.primary_metric, gate.resamples,
                                  gate.confidence)  # fmt: skip
    return decide(new_score, comparison, gate.primary_metric, gate.min_improvement)


def _label(version: ModelVersion | None) -> str:
    return "no champion" if version is None else f"v{version.version}"


def _compared_with(champion: ModelVersion | None, on: GateImages) -> str:
    if champion is None:
        return "no champion"
    return f"champion v{champion.version}, scored again on {on.description} (same images, paired)"


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
                    ColSpec(AnyType(), "pixel_range", required=False),  # a bad value is that row's error
                ]
            ),
            outputs=Schema(
                [ColSpec("string", "label"), ColSpec("double", "confidence"), ColSpec("boolean", "uncertain")]
                + [ColSpec("double", e) for e in model.emotions]
                + [ColSpec("string", "error")]
            ),
            params=ParamSchema(
                [ParamSpec("raw", "boolean", False), ParamSpec("min_confidence", "double", MIN_CONFIDENCE)]
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
                "output": "per row: label, confidence, uncertain, the seven probabilities (calibrated unless "
                "params raw is true), and error ('' when the row was predicted)",
                "temperature": model.temperature,
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
