"""The local ZenML stack `fer_local`: default orchestrator and artifact store, MLflow as
experiment tracker and model registry. zenml loads when these functions run."""

from __future__ import annotations

from pathlib import Path

from ferkit.files import atomic_write_text
from ferkit.registry.store import uri_file

STACK_NAME = "fer_local"
TRACKER_NAME = "fer_mlflow"
REGISTRY_NAME = "fer_registry"


def setup_local_stack(root: str | Path = ".") -> dict[str, str]:
    """Idempotently: `zenml init` at `root`, an MLflow experiment tracker and model
    registry, and the stack `fer_local` on the default orchestrator and artifact
    store, made active. Returns the component names."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    root = Path(root).resolve()
    if not (root / ".zen").exists():
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
    return {"stack": STACK_NAME, "experiment_tracker": TRACKER_NAME, "model_registry": REGISTRY_NAME}


def tracking_uri() -> str:
    """MLflow tracking URI of the active stack's experiment tracker."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    if tracker is None:
        raise RuntimeError("the active ZenML stack has no experiment tracker; run `make stack`")
    return tracker.get_tracking_uri()


def record_tracking_uri() -> Path:
    """Write the active stack's tracking URI where `ferkit.registry.store` finds it without zenml."""
    return atomic_write_text(uri_file(), tracking_uri() + "\n")
