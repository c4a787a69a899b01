"""What a step knows about the ZenML run it is in; every helper answers "nothing" outside a run
(a test calling `step.entrypoint(...)`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

# `step` unused here: ZenML looks for `@step` in the (wrapped) entrypoint's globals to keep that
# line out of a step's cache key.
from zenml import get_step_context, step  # noqa: F401

from ferkit.stopping import watch_stop_requests

P = ParamSpec("P")
R = TypeVar("R")

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


def stops_when_asked(entrypoint: Callable[P, R]) -> Callable[P, R]:
    """Under `@step`: a stop request (`kill`, Ctrl-C) that lands while the step runs stops it, even
    where code that catches everything swallowed it (ZenML's log capture, Python's logging); the
    step's loops raise it at their next image or batch, or the step when its body returns.

    ZenML reads the wrapped function for everything it inspects (signature, annotations, source,
    cache key); a failure's stored source location names this file rather than the step's.
    """

    @functools.wraps(entrypoint)
    def watched(*args: P.args, **kwargs: P.kwargs) -> R:
        with watch_stop_requests():
            return entrypoint(*args, **kwargs)

    return watched
