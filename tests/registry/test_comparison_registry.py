"""What a comparison reads from and writes to MLflow: which rows are finished, the version tags
that carry the table, and `ferkit versions` printing it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from ferkit.cli import main
from ferkit.comparison import CONFIG_TAG, comparison_configs
from ferkit.registry import comparison
from ferkit.registry.names import DUPLICATE_OF

ROOT = Path(__file__).resolve().parents[2]
NAME = "fer_emotion_backbones"


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient().create_registered_model(NAME)
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri("")


@pytest.fixture(scope="module")
def configs():
    return comparison_configs(ROOT / "configs/compare_backbones.yaml")


def row_run(client, configs, row: str, *, evaluated=True, register=True, fingerprint=None, tags=None) -> str:
    """A run as a row's pipeline leaves it: tagged, evaluated, registered (each optional)."""
    tracker = configs[row]["settings"]["experiment_tracker"]
    experiment = mlflow.set_experiment(tracker["experiment_name"]).experiment_id
    run_tags = {**tracker["tags"], **({CONFIG_TAG: fingerprint} if fingerprint else {}), **(tags or {})}
    run = client.create_run(experiment, tags=run_tags)
    if evaluated:
        client.log_metric(run.info.run_id, "test.accuracy", 0.5)
    client.set_terminated(run.info.run_id)
    if register:
        client.create_model_version(NAME, source="file:///nowhere", run_id=run.info.run_id)
    return run.info.run_id


class TestFinishedRows:
    def test_a_registered_evaluated_run_of_the_row_fingerprint_is_finished(self, store, configs):
        run_id = row_run(store, configs, "xception")
        found = comparison.finished_rows(configs, NAME)
        assert set(found) == {"xception"}
        run, version = found["xception"]
        assert (run.info.run_id, str(version.version)) == (run_id, "1")

    def test_unfinished_changed_and_deleted_runs_do_not_count(self, store, configs):
        row_run(store, configs, "xception", register=False)  # stopped before registering
        row_run(store, configs, "resnet18", evaluated=False)  # no PrivateTest figures
        row_run(store, configs, "fer_vgg", fingerprint="0" * 16)  # an older recipe of the row
        store.delete_run(row_run(store, configs, "resnet50"))
        assert comparison.finished_rows(configs, NAME) == {}

    def test_a_rerun_with_the_same_weights_points_at_the_version_it_duplicates(self, store, configs):
        row_run(store, configs, "fer_vgg")
        newer = row_run(store, configs, "fer_vgg", register=False, tags={DUPLICATE_OF: f"{NAME}/1"})
        run, version = comparison.finished_rows(configs, NAME)["fer_vgg"]
        assert (run.info.run_id, str(version.version)) == (newer, "1")
        row = comparison.row_figures("fer_vgg", run, version)
        assert row["run_id"] == newer and row["checkpoint_run_id"] == version.run_id != newer

    def test_a_missing_registered_model_means_nothing_is_finished(self, store, configs):
        row_run(store, configs, "xception", register=False)
        assert comparison.finished_rows(configs, "no_such_model") == {}


class TestVersionTags:
    ROW = {"row": "xception", "parameters_m": 21.8, "accuracy": 0.6, "balanced_accuracy": 0.55, "log_loss": 1.1}

    def test_the_newest_version_of_a_row_carries_the_table_and_older_ones_lose_it(self, store, configs, capsys):
        for _ in range(2):
            row_run(store, configs, "xception")
        row_run(store, configs, "fer_vgg")
        comparison.tag_versions([{**self.ROW, "version": 1}], "compare_backbones", NAME)
        comparison.tag_versions([{**self.ROW, "accuracy": 0.62, "version": 2}], "compare_backbones", NAME)
        tags = {str(v.version): v.tags for v in store.search_model_versions(f"name = '{NAME}'")}
        assert not any(k.startswith("compare.") for k in tags["1"])
        assert comparison.rows_from_tags(tags["2"])["accuracy"] == 0.62
        assert comparison.rows_from_tags(tags["3"]) is None

        assert main(["versions", "--name", NAME]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split()[:3] == ["backbone", "params", "M"] and lines[0].split()[-2:] == [
            "comparison",
            "version",
        ]
        assert lines[1].split()[:4] == ["xception", "21.80", "62.00", "55.00"] and lines[1].split()[-1] == "2"
        assert "2 version(s) in no comparison's table:" in lines  # v1 (superseded) and v3 (not in a table)
        assert [line.split()[0] for line in lines[-2:]] == ["3", "1"]
