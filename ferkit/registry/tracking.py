"""MLflow logging helpers; every call is a no-op when no MLflow run is active.

Steps run with the stack's experiment tracker (their decorators ask for it), which
opens one MLflow run per pipeline run; called through `step.entrypoint(...)` in a
test there is no run and nothing is logged.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow


def active() -> bool:
    return mlflow.active_run() is not None


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}, the names the MLflow compare view lines up on."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    if active():
        flat = {
            k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v) for k, v in flatten(params, prefix).items()
        }
        mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})


def log_metrics(metrics: Mapping[str, float], prefix: str = "", step: int | None = None) -> None:
    if active():
        named = {f"{prefix}.{k}" if prefix else k: float(v) for k, v in metrics.items()}
        mlflow.log_metrics(named, step=step)


def log_file(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    if active():
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    if active():
        mlflow.log_text(text, artifact_file)


def log_dict(data: Mapping[str, Any], artifact_file: str) -> None:
    if active():
        mlflow.log_dict(dict(data), artifact_file)


class ArtifactDir:
    """A temporary folder whose files are logged to MLflow under `artifact_path` on exit."""

    def __init__(self, artifact_path: str):
        self.artifact_path = artifact_path
        self._tmp = tempfile.TemporaryDirectory()
        self.path = Path(self._tmp.name)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and active():
                mlflow.log_artifacts(str(self.path), artifact_path=self.artifact_path)
        finally:
            self._tmp.cleanup()
