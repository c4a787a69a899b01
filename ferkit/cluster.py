"""Remote stacks (Kubernetes, Kubeflow) and the run configs that go with them.

Two kinds of YAML live under configs/:
- `configs/stacks/<target>.yaml`: which stack components, which flavors and which
  configuration; `${VAR}` and `${VAR:-default}` come from the environment.
- `configs/cluster/<target>.yaml`: an overlay of settings (image build, per-step
  resources, pod node selectors and tolerations) merged over any run config
  (configs/paper.yaml, configs/schedule.yaml, ...) to make its cluster version.

Both are validated against the installed ZenML flavors' own config and settings
classes, so a typo or a wrong type fails here, not in a pod an hour later. This
module imports zenml lazily (only the command line calls it).
"""

from __future__ import annotations

import copy
import importlib
import os
import re
from pathlib import Path
from typing import Any

import yaml

TARGETS = ("kubernetes", "kubeflow")
_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")

# flavor -> (component type, module, flavor class); all importable without the integrations' packages.
FLAVORS: dict[tuple[str, str], tuple[str, str]] = {
    ("orchestrator", "kubernetes"): ("zenml.integrations.kubernetes.flavors", "KubernetesOrchestratorFlavor"),
    ("orchestrator", "kubeflow"): ("zenml.integrations.kubeflow.flavors", "KubeflowOrchestratorFlavor"),
    ("artifact_store", "s3"): ("zenml.integrations.s3.flavors", "S3ArtifactStoreFlavor"),
    ("artifact_store", "gcp"): ("zenml.integrations.gcp.flavors", "GCPArtifactStoreFlavor"),
    ("artifact_store", "azure"): ("zenml.integrations.azure.flavors", "AzureArtifactStoreFlavor"),
    ("container_registry", "default"): ("zenml.container_registries", "DefaultContainerRegistryFlavor"),
    ("image_builder", "local"): ("zenml.image_builders", "LocalImageBuilderFlavor"),
    ("experiment_tracker", "mlflow"): ("zenml.integrations.mlflow.flavors", "MLFlowExperimentTrackerFlavor"),
}
# settings key -> (module, settings class)
SETTINGS: dict[str, tuple[str, str]] = {
    "docker": ("zenml.config", "DockerSettings"),
    "resources": ("zenml.config", "ResourceSettings"),
    "orchestrator.kubernetes": (
        "zenml.integrations.kubernetes.flavors.kubernetes_orchestrator_flavor",
        "KubernetesOrchestratorSettings",
    ),
    "orchestrator.kubeflow": (
        "zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor",
        "KubeflowOrchestratorSettings",
    ),
}


class ClusterConfigError(ValueError):
    """A stack definition or cluster overlay that cannot work; the message names the field."""


def _load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ClusterConfigError(f"{path}: expected a mapping at the top level")
    return data


def _class(module: str, name: str) -> type:
    return getattr(importlib.import_module(module), name)


def substitute(value: Any, env: dict[str, str], missing: set[str]) -> Any:
    """`${VAR}` / `${VAR:-default}` filled from `env`; names without a value go into `missing`."""
    if isinstance(value, dict):
        return {k: substitute(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if env.get(name):
            return env[name]
        if default is not None:
            return default
        missing.add(name)
        return match.group(0)

    return _VAR.sub(fill, value)


def stack_definition(target: str, root: str | Path = ".", env: dict[str, str] | None = None) -> dict:
    """configs/stacks/<target>.yaml with the environment filled in and every component's
    configuration checked by its flavor's config class."""
    if target not in TARGETS:
        raise ClusterConfigError(f"unknown target {target!r}; expected one of {TARGETS}")
    path = Path(root) / "configs" / "stacks" / f"{target}.yaml"
    raw = _load(path)
    missing: set[str] = set()
    definition = substitute(raw, dict(os.environ if env is None else env), missing)
    if missing:
        described = raw.get("environment", {})
        lines = [f"  {name}: {described.get(name, '(see the file)')}" for name in sorted(missing)]
        raise ClusterConfigError(f"{path}: set these environment variables first:\n" + "\n".join(lines))
    for kind, component in (definition.get("components") or {}).items():
        where = f"{path}: components.{kind}"
        flavor = component.get("flavor")
        if (kind, flavor) not in FLAVORS:
            raise ClusterConfigError(
                f"{where}: flavor {flavor!r} is not one ferkit knows for a {kind} "
                f"({sorted(f for k, f in FLAVORS if k == kind)})"
            )
        flavor_class = _class(*FLAVORS[(kind, flavor)])
        try:
            flavor_class().config_class(**(component.get("configuration") or {}))
        except Exception as exc:
            raise ClusterConfigError(f"{where} ({flavor}): {exc}") from exc
    return definition


def registration_commands(definition: dict) -> list[list[str]]:
    """The `zenml` CLI commands that register the stack: one per component, then the stack."""
    commands, stack_args = [], []
    flags = {
        "orchestrator": "-o",
        "artifact_store": "-a",
        "container_registry": "-c",
        "image_builder": "-i",
        "experiment_tracker": "-e",
    }
    for kind, component in definition["components"].items():
        command = ["zenml", kind.replace("_", "-"), "register", component["name"], f"--flavor={component['flavor']}"]
        command += [f"--{k}={v}" for k, v in (component.get("configuration") or {}).items()]
        commands.append(command)
        stack_args += [flags[kind], component["name"]]
    commands.append(["zenml", "stack", "register", definition["name"], *stack_args, "--set"])
    return commands


def deep_merge(base: dict, overlay: dict) -> dict:
    """`overlay` over `base`, mappings merged key by key, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_settings(settings: dict, where: str) -> None:
    """Each settings block through its ZenML settings class; unknown keys are errors."""
    for key, value in (settings or {}).items():
        if key not in SETTINGS:
            raise ClusterConfigError(f"{where}.{key}: ferkit validates only {sorted(SETTINGS)}")
        try:
            _class(*SETTINGS[key])(**(value or {}))
        except Exception as exc:
            raise ClusterConfigError(f"{where}.{key}: {exc}") from exc


def cluster_run_config(
    base_config: str | Path, target: str, root: str | Path = ".", step_names: set[str] | None = None
) -> dict:
    """A run config for the cluster: `base_config` with configs/cluster/<target>.yaml merged over it.

    Overlay steps the base does not configure are kept only when they belong to the
    pipeline (`step_names`); the merged file is checked by ZenML's run-configuration model.
    """
    if target not in TARGETS:
        raise ClusterConfigError(f"unknown target {target!r}; expected one of {TARGETS}")
    overlay_path = Path(root) / "configs" / "cluster" / f"{target}.yaml"
    base, overlay = _load(base_config), _load(overlay_path)
    validate_settings(overlay.get("settings", {}), f"{overlay_path}: settings")
    steps = dict(overlay.get("steps") or {})
    for name, step in steps.items():
        validate_settings((step or {}).get("settings", {}), f"{overlay_path}: steps.{name}.settings")
    known = set(base.get("steps") or {}) | (step_names or set())
    overlay = {**overlay, "steps": {k: v for k, v in steps.items() if k in known}}
    merged = deep_merge(base, overlay)
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    try:
        PipelineRunConfiguration(**merged)
    except Exception as exc:
        raise ClusterConfigError(f"{base_config} + {overlay_path}: {exc}") from exc
    return merged


def register_stack(definition: dict) -> None:
    """Register the components and the stack on the connected ZenML server, and activate it."""
    from zenml.client import Client
    from zenml.enums import StackComponentType, StoreType

    client = Client()
    if client.zen_store.type != StoreType.REST:
        raise ClusterConfigError(
            "remote stacks need a ZenML server that the cluster can reach: run `zenml login <server URL>` "
            "first (this client uses a local SQL store)"
        )
    components = {}
    for kind, component in definition["components"].items():
        created = client.create_stack_component(
            name=component["name"],
            flavor=component["flavor"],
            component_type=StackComponentType(kind),
            configuration=component.get("configuration") or {},
        )
        components[StackComponentType(kind)] = created.id
    client.create_stack(name=definition["name"], components=components)
    client.activate_stack(definition["name"])


def pipeline_step_names(pipeline: str, parameters: dict) -> set[str]:
    """Invocation names of the pipeline `pipelines.<module>` composed with `parameters` (imports zenml)."""
    module = importlib.import_module(pipeline)
    definition = getattr(module, pipeline.rsplit(".", 1)[-1])
    definition.prepare(**{k: v for k, v in parameters.items() if v is not None})
    return set(definition.invocations)
