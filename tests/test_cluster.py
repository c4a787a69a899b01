"""Cluster stacks and run-config overlays, checked by the installed ZenML flavors' own classes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ferkit.cli import main
from ferkit.cluster import (
    ClusterConfigError,
    cluster_run_config,
    pipeline_step_names,
    register_stack,
    registration_commands,
    stack_definition,
    validate_settings,
)

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "FERKIT_KUBE_CONTEXT": "gke_ferkit",
    "FERKIT_ARTIFACT_STORE": "s3://ferkit-bucket/artifacts",
    "FERKIT_CONTAINER_REGISTRY": "registry.example.com/ferkit",
    "FERKIT_MLFLOW_URI": "https://mlflow.example.com",
    "FERKIT_MLFLOW_USERNAME": "ferkit",
    "FERKIT_MLFLOW_PASSWORD": "not-a-real-password",
}


def copy_configs(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    return tmp_path


class TestStacks:
    @pytest.mark.parametrize("target", ["kubernetes", "kubeflow"])
    def test_definitions_validate_and_fill_the_environment(self, target):
        definition = stack_definition(target, ROOT, ENV)
        orchestrator = definition["components"]["orchestrator"]
        assert orchestrator["flavor"] == target
        assert orchestrator["configuration"]["kubernetes_context"] == "gke_ferkit"
        assert definition["components"]["artifact_store"]["configuration"]["path"] == ENV["FERKIT_ARTIFACT_STORE"]
        assert definition["components"]["experiment_tracker"]["name"] == "fer_mlflow"

    def test_missing_environment_is_named_with_what_it_means(self):
        env = {k: v for k, v in ENV.items() if k != "FERKIT_ARTIFACT_STORE"}
        with pytest.raises(ClusterConfigError, match=r"FERKIT_ARTIFACT_STORE: object-storage URI"):
            stack_definition("kubernetes", ROOT, env)

    def test_a_bad_component_value_names_the_component(self, tmp_path):
        root = copy_configs(tmp_path)
        path = root / "configs/stacks/kubernetes.yaml"
        data = yaml.safe_load(path.read_text())
        data["components"]["orchestrator"]["configuration"]["max_parallelism"] = "many"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ClusterConfigError, match=r"(?s)components\.orchestrator \(kubernetes\).*max_parallelism"):
            stack_definition("kubernetes", root, ENV)

    def test_a_local_artifact_store_is_refused_for_a_cluster(self):
        with pytest.raises(ClusterConfigError, match="components.artifact_store"):
            stack_definition("kubernetes", ROOT, {**ENV, "FERKIT_ARTIFACT_STORE": "/tmp/local/path"})

    def test_unknown_target(self):
        with pytest.raises(ClusterConfigError, match="unknown target 'slurm'"):
            stack_definition("slurm", ROOT, ENV)

    def test_dry_run_prints_the_registration(self, monkeypatch, capsys):
        for key, value in ENV.items():
            monkeypatch.setenv(key, value)
        assert main(["stack-remote", "kubeflow", "--root", str(ROOT), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "zenml integration install -y kubeflow s3 mlflow" in out
        assert "zenml orchestrator register ferkit-kubeflow --flavor=kubeflow" in out
        assert "zenml stack register ferkit-kubeflow -o ferkit-kubeflow -a ferkit-artifacts" in out
        commands = registration_commands(stack_definition("kubeflow", ROOT, ENV))
        assert commands[-1][-1] == "--set" and len(commands) == 6

    @pytest.mark.parametrize(
        "flavor, path", [("gcp", "gs://ferkit-bucket/artifacts"), ("azure", "az://ferkit/artifacts")]
    )
    def test_another_object_store_brings_its_own_integration(self, monkeypatch, capsys, flavor, path):
        for key, value in {**ENV, "FERKIT_ARTIFACT_STORE": path, "FERKIT_ARTIFACT_FLAVOR": flavor}.items():
            monkeypatch.setenv(key, value)
        assert main(["stack-remote", "kubernetes", "--root", str(ROOT), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"zenml integration install -y kubernetes {flavor} mlflow\n" in out
        assert f"zenml artifact-store register ferkit-artifacts --flavor={flavor} --path={path}" in out
        # What `make stack-kubernetes` installs: the same list.
        assert stack_definition("kubernetes", ROOT)["integrations"] == ["kubernetes", flavor, "mlflow"]

    def test_registering_without_a_server_says_how_to_connect(self):
        with pytest.raises(ClusterConfigError, match="zenml login"):
            register_stack(stack_definition("kubernetes", ROOT, ENV))


class TestOverlays:
    @pytest.mark.parametrize("target", ["kubernetes", "kubeflow"])
    @pytest.mark.parametrize("config", ["configs/paper.yaml", "configs/cpu.yaml"])
    def test_training_configs_get_a_gpu_for_the_train_step(self, target, config):
        merged = cluster_run_config(ROOT / config, target, ROOT)
        train = merged["steps"]["train_model"]
        assert train["settings"]["resources"]["gpu_count"] == 1
        pod = train["settings"][f"orchestrator.{target}"]["pod_settings"]
        assert pod["node_selectors"] == {"ferkit.io/pool": "gpu"}
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
        # The base config's own parameters stay; the overlay adds its settings around them.
        base = yaml.safe_load((ROOT / config).read_text())
        assert train["parameters"] == base["steps"]["train_model"]["parameters"]
        assert merged["settings"]["docker"]["dockerfile"] == "docker/Dockerfile"
        assert merged["parameters"]["data_path"] == "/data/fer2013.zip"
        assert "retrain_model" not in merged["steps"]  # not a fer_training step
        assert merged["steps"]["oversample_minority"]["settings"]["resources"]["gpu_count"] == 1  # the GAN

    def test_scheduled_retraining_on_kubeflow(self):
        names = pipeline_step_names("pipelines.fer_retraining", {"new_data_path": "/data/new"})
        merged = cluster_run_config(ROOT / "configs/schedule.yaml", "kubeflow", ROOT, names)
        assert merged["schedule"]["cron_expression"] == "0 3 * * 1"
        assert merged["steps"]["retrain_model"]["settings"]["resources"]["gpu_count"] == 1
        assert merged["steps"]["evaluate_retrained"]["settings"]["resources"]["cpu_count"] == 4
        assert "train_model" not in merged["steps"] and "evaluate_model" not in merged["steps"]

    def test_settings_are_checked_by_zenml_classes(self):
        validate_settings({"resources": {"gpu_count": 2, "memory": "8GB"}}, "x")
        with pytest.raises(ClusterConfigError, match=r"steps\.train_model\.settings\.resources"):
            validate_settings({"resources": {"gpu_count": "lots"}}, "steps.train_model.settings")
        with pytest.raises(ClusterConfigError, match=r"orchestrator\.kubernets: ferkit validates only"):
            validate_settings({"orchestrator.kubernets": {}}, "settings")
        with pytest.raises(ClusterConfigError, match=r"orchestrator\.kubernetes"):
            validate_settings({"orchestrator.kubernetes": {"pod_settings": {"node_selectors": "gpu"}}}, "settings")

    def test_a_bad_overlay_stops_the_merge_and_writes_nothing(self, tmp_path, capsys):
        root = copy_configs(tmp_path)
        path = root / "configs/cluster/kubernetes.yaml"
        data = yaml.safe_load(path.read_text())
        data["steps"]["train_model"]["settings"]["resources"]["memory"] = "lots of it"
        path.write_text(yaml.safe_dump(data))
        out = tmp_path / "out.yaml"
        code = main(
            [
                "cluster-config",
                str(root / "configs/cpu.yaml"),
                "--target",
                "kubernetes",
                "--root",
                str(root),
                "-o",
                str(out),
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and ".settings.resources" in err and "memory" in err
        assert not out.exists()

    def test_cli_writes_the_merged_config(self, tmp_path):
        out = tmp_path / "cluster" / "paper.yaml"
        assert (
            main(
                [
                    "cluster-config",
                    str(ROOT / "configs/paper.yaml"),
                    "--target",
                    "kubernetes",
                    "--root",
                    str(ROOT),
                    "-o",
                    str(out),
                ]
            )
            == 0
        )
        merged = yaml.safe_load(out.read_text())
        assert merged["steps"]["train_model"]["settings"]["resources"]["gpu_count"] == 1
