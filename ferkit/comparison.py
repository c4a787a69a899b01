"""The backbone comparison: one fer_training run config per backbone, all in one MLflow experiment.

`configs/compare_backbones.yaml` names a base config, the backbones with their own model
arguments, a shared epoch budget, the experiment and a registered-model name of its own
(so a comparison never touches `fer_emotion`).
"""

from __future__ import annotations

import copy
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

SPEC_KEYS = {"base", "backbones", "experiment_name", "registered_model_name"}


def _base_config(spec_path: Path, spec: dict) -> dict:
    base_path = Path(spec["base"])
    if not base_path.is_file() and (spec_path.parent / base_path).is_file():
        base_path = spec_path.parent / base_path  # relative to the spec rather than the working folder
    base = yaml.safe_load(base_path.read_text())
    architecture = base["steps"]["train_model"]["parameters"]["config"].get("architecture")
    if architecture != "hybrid":
        raise ValueError(
            f"{base_path}: the comparison swaps the hybrid model's backbone; architecture is {architecture!r}"
        )
    return base


def _with_backbone(base: dict, spec: dict, spec_path: Path, name: str, overrides: dict | None) -> dict:
    config = copy.deepcopy(base)
    trained = config["steps"]["train_model"]["parameters"]["config"]
    kwargs = dict(trained["architecture_kwargs"])
    if name != kwargs.get("backbone"):
        kwargs.pop("backbone_options", None)  # options of the base trunk mean nothing to another
    kwargs.update({"backbone": name, **(overrides or {})})
    trained["architecture_kwargs"] = kwargs
    trained.update(copy.deepcopy(spec.get("train_overrides") or {}))
    if spec.get("epochs"):
        for phase in trained.get("phases") or []:
            phase["epochs"] = min(phase["epochs"], spec["epochs"])
        trained["epochs"] = min(trained.get("epochs", spec["epochs"]), spec["epochs"])
    if spec.get("limit_per_class"):
        ingest = config["steps"].setdefault("ingest_fer2013", {})
        ingest.setdefault("parameters", {})["limit_per_class"] = spec["limit_per_class"]
    config["steps"].setdefault("register_model", {}).setdefault("parameters", {})["registered_model_name"] = spec[
        "registered_model_name"
    ]
    config.setdefault("settings", {})["experiment_tracker"] = {
        "experiment_name": spec["experiment_name"],
        "tags": {"comparison": spec_path.stem, "backbone": name},
    }
    config["run_name"] = f"{spec_path.stem}-{name}-{{date}}-{{time}}"
    config["model"] = {**config.get("model", {}), "name": spec["registered_model_name"]}
    return config


def comparison_configs(spec_path: str | Path) -> dict[str, dict]:
    """backbone name -> a full fer_training config: the spec's base config with that backbone,
    its per-backbone model arguments, the shared epoch budget, one MLflow experiment and
    a registered-model name of its own."""
    spec_path = Path(spec_path)
    spec = yaml.safe_load(spec_path.read_text())
    missing = SPEC_KEYS - set(spec)
    if missing:
        raise ValueError(f"{spec_path}: missing {sorted(missing)}")
    base = _base_config(spec_path, spec)
    return {
        name: _with_backbone(base, spec, spec_path, name, overrides) for name, overrides in spec["backbones"].items()
    }


def run_comparison(configs: dict[str, dict], names: Sequence[str], zenml: str, dry_run: bool = False) -> list[str]:
    """Run `zenml pipeline run pipelines.fer_training` once per backbone in `names`; returns the failed ones.

    With `dry_run` each run's train config is printed and nothing runs.
    """
    failed = []
    with tempfile.TemporaryDirectory(prefix="ferkit-compare-") as folder:
        for name in names:
            path = Path(folder) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(configs[name], sort_keys=False))
            command = [zenml, "pipeline", "run", "pipelines.fer_training", "-c", str(path)]
            print(f"== {name}: {' '.join(command[1:4])} (backbone {name})", flush=True)
            if dry_run:
                print(yaml.safe_dump(configs[name]["steps"]["train_model"]["parameters"]["config"], sort_keys=False))
                continue
            if subprocess.run(command, env={**os.environ, "FERKIT_CONFIG_FILE": str(path)}).returncode != 0:
                failed.append(name)
    return failed
