"""The local ZenML stack `fer_local`: default orchestrator and artifact store, MLflow as
experiment tracker and model registry. zenml loads when these functions run."""

from __future__ import annotations

import os
from pathlib import Path

from ferkit.files import atomic_write_text
from ferkit.home import REPOSITORY_ENV
from ferkit.registry.decision import RegistryError
from ferkit.registry.store import uri_file

STACK_NAME = "fer_local"
TRACKER_NAME = "fer_mlflow"
REGISTRY_NAME = "fer_registry"


class StackError(RegistryError):
    """The project's ZenML state is not what ferkit set up; the message says how to repair it."""


def setup_local_stack(root: str | Path = ".") -> dict[str, str]:
    """Idempotently: `zenml init` at `root`, an MLflow experiment tracker and model
    registry, and the stack `fer_local` on the default orchestrator and artifact
    store, made active in the repository and in the project's ZenML home. Returns the
    component names."""
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration
    from zenml.enums import StackComponentType

    # A home other than the checkout's has its own repository ($ZENML_REPOSITORY_PATH, ferkit.home).
    root = Path(os.environ.get(REPOSITORY_ENV) or root).resolve()
    if not (root / ".zen").exists():
        root.mkdir(parents=True, exist_ok=True)
        Client.initialize(root=root)
    client = Client()
    for name, component_type in (
        (TRACKER_NAME, StackComponentType.EXPERIMENT_TRACKER),
        (REGISTRY_NAME, StackComponentType.MODEL_REGISTRY),
    ):
        if not client.list_stack_components(name=name, type=component_type).items:
            client.create_stack_component(name=name, flavor="mlflow", component_type=component_type, configuration={})
    if not client.list_stacks(name=STACK_NAME).items:
        client.create_stack(
            name=STACK_NAME,
            components={
                StackComponentType.ORCHESTRATOR: "default",
                StackComponentType.ARTIFACT_STORE: "default",
                StackComponentType.EXPERIMENT_TRACKER: TRACKER_NAME,
                StackComponentType.MODEL_REGISTRY: REGISTRY_NAME,
            },
        )
    client.activate_stack(STACK_NAME)
    # Also in the project's global config (ZENML_CONFIG_PATH is the project's home), so commands run
    # outside the repository folder find the same stack.
    GlobalConfiguration().set_active_stack(stack=client.get_stack(STACK_NAME))
    return {"stack": STACK_NAME, "experiment_tracker": TRACKER_NAME, "model_registry": REGISTRY_NAME}


def tracking_uri() -> str:
    """MLflow tracking URI of the active stack's experiment tracker."""
    from zenml.client import Client

    stack = Client().active_stack
    if stack.experiment_tracker is None:
        raise StackError(
            f"the active ZenML stack {stack.name!r} has no experiment tracker: `make stack` (or `ferkit stack`) "
            f"makes {STACK_NAME} active again"
        )
    return stack.experiment_tracker.get_tracking_uri()


def record_tracking_uri() -> Path:
    """Write the active stack's tracking URI where `ferkit.registry.store` finds it without zenml."""
    return atomic_write_text(uri_file(), tracking_uri() + "\n")
