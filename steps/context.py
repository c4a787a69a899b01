"""What a step knows about the ZenML run it is in; every helper answers "nothing" outside a run
(a test calling `step.entrypoint(...)`)."""

from __future__ import annotations

from zenml import get_step_context

# `@step(experiment_tracker=TRACKER)`: the active stack's experiment tracker, found when the
# pipeline runs (locally `fer_mlflow` of `fer_local`; on a cluster the remote stack's).
TRACKER = True


def in_step() -> bool:
    """True inside a running ZenML step."""
    try:
        get_step_context()
    except RuntimeError:
        return False
    return True


def input_artifact_id(input_name: str) -> str | None:
    """The ZenML artifact version id of the step's input `input_name`."""
    try:
        return str(get_step_context().inputs[input_name][0].id)
    except (RuntimeError, KeyError, IndexError, AttributeError):
        return None


def model_version_id() -> str | None:
    """The id of the ZenML model version this run is tied to."""
    try:
        model = get_step_context().model
    except (RuntimeError, ValueError):
        return None
    return str(model.id) if model is not None else None
