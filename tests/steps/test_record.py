"""What the training steps log about a config, into a real MLflow run (SQLite in a temp folder)."""

from __future__ import annotations

import mlflow
import pytest

from ferkit.training import TrainConfig
from steps.train.record import log_train_config


@pytest.fixture
def tracked(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.MlflowClient().create_experiment("record", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("record")
    yield mlflow.MlflowClient()
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri("")


def logged(config: TrainConfig, client: mlflow.MlflowClient) -> dict[str, str]:
    with mlflow.start_run() as run:
        log_train_config(config)
    return client.get_run(run.info.run_id).data.params


def test_phases_log_their_own_epochs_optimizer_and_rate_not_the_single_phase_defaults(tracked):
    """A config with phases (cpu.yaml, paper.yaml) never sets the single-phase `epochs`, `optimizer`
    and `lr`: their defaults (30, sgd, 0.05) must not show in the MLflow compare view as if trained."""
    config = TrainConfig(
        phases=[
            {"name": "frozen", "epochs": 2, "lr": 0.001, "optimizer": "adamw", "trainable": ["head"]},
            {"name": "all", "epochs": 5, "lr": 0.0005, "optimizer": "sgd"},
        ]
    )
    params = logged(config, tracked)
    assert params["train.epochs"] == "7"
    assert "train.optimizer" not in params and "train.lr" not in params
    assert (params["train.phase0.optimizer"], params["train.phase0.lr"], params["train.phase0.epochs"]) == (
        "adamw", "0.001", "2",
    )  # fmt: skip
    assert (params["train.phase1.optimizer"], params["train.phase1.lr"], params["train.phase1.epochs"]) == (
        "sgd", "0.0005", "5",
    )  # fmt: skip


def test_a_single_phase_config_logs_its_epochs_optimizer_and_rate(tracked):
    params = logged(TrainConfig(epochs=4, optimizer="adamw", lr=0.003), tracked)
    assert (params["train.epochs"], params["train.optimizer"], params["train.lr"]) == ("4", "adamw", "0.003")
    assert params["train.phase0.epochs"] == "4" and params["train.phase0.optimizer"] == "adamw"
