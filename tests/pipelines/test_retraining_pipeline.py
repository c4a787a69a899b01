"""`fer_retraining` end to end through the ZenML CLI: trains, promotes, records lineage, skips,
and stops on a bad batch with the champion untouched.

This module sorts after test_fer_training.py on purpose: that module's first run must not
find its steps cached by the fer_training run this module's fixture makes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from ferkit.data.labels import EMOTIONS
from tests.factories import face, jpeg_bytes, write_folder
from tests.pipelines.test_fer_training import BIN, ROOT, _run, smoke_data, stack  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
# Its own registered model and ZenML model, so these runs never move another test's champion.
NAME = "fer_emotion_retraining_test"


def retrain(config: Path, data_path: Path, expect_ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "FER2013_PATH": str(data_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.fer_retraining", "-c", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if expect_ok:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def smoke_config(tmp: Path, batch: Path, min_improvement: float | None = None, **parameters) -> Path:
    """The smoke retraining config on `batch`; `min_improvement` sets the champion gate's bound."""
    config = yaml.safe_load((ROOT / "configs/retraining_smoke.yaml").read_text())
    config["parameters"].update(new_data_path=str(batch), **parameters)
    config["model"]["name"] = NAME
    for step in ("load_champion", "promote_retrained"):
        config["steps"].setdefault(step, {}).setdefault("parameters", {})["registered_model_name"] = NAME
    if min_improvement is not None:
        config["steps"]["promote_retrained"]["parameters"]["min_improvement"] = min_improvement
    path = tmp / f"retrain-{len(list(tmp.glob('retrain-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def batch_files(per_class: int, first_seed: int) -> dict[str, bytes]:
    """New faces in the Kaggle layout, with seeds no other test data uses."""
    files, seed = {}, first_seed
    for emotion in EMOTIONS:
        for _ in range(per_class):
            files[f"train/{emotion}/new_{seed}.jpg"] = jpeg_bytes(face(seed))
            seed += 1
    return files


def versions(client: mlflow.MlflowClient) -> list:
    return sorted(client.search_model_versions(f"name='{NAME}'"), key=lambda v: int(v.version))


def champion(client: mlflow.MlflowClient):
    return client.get_model_version_by_alias(NAME, "champion")


@pytest.fixture(scope="module")
def line(stack, smoke_data, tmp_path_factory):  # noqa: F811 (pytest fixtures)
    """A fresh champion from fer_training, made champion by hand, with a known test score."""
    mlflow.set_tracking_uri(stack)
    client = mlflow.MlflowClient()
    training = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    training["model"]["name"] = NAME
    training["steps"].setdefault("register_model", {}).setdefault("parameters", {})["registered_model_name"] = NAME
    tmp = tmp_path_factory.mktemp("retraining")
    (tmp / "training.yaml").write_text(yaml.safe_dump(training))
    _run(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.fer_training", "-c", str(tmp / "training.yaml")], smoke_data
    )
    newest = versions(client)[-1]
    if champion(client).version != newest.version:  # another test's model may hold the alias
        subprocess.run(
            [str(BIN / "ferkit"), "promote", str(newest.version), "--name", NAME],
            cwd=ROOT,
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert champion(client).version == newest.version
    assert newest.tags["data.artifact_version_id"]  # fer_training records the data it trained on
    return client, tmp


def test_new_data_trains_records_lineage_and_promotes(line, smoke_data):  # noqa: F811
    client, tmp = line
    parent = champion(client)
    batch = write_folder(tmp / "batch1", batch_files(3, first_seed=50_000))  # 21 faces, 3 per class

    # A forced roll-out: promoted unless worse than the champion by more than 1 (never).
    out = retrain(smoke_config(tmp, batch, min_improvement=-1.0), smoke_data)
    assert "21 new labelled images" in out.stdout + out.stderr

    new = versions(client)[-1]
    assert int(new.version) == int(parent.version) + 1
    assert champion(client).version == new.version and new.tags["promotion.decision"] == "champion"
    assert new.tags["lineage.parent_version"] == str(parent.version)
    assert new.tags["lineage.new_images"] == "21" and new.tags["lineage.held_out"] == "7"
    assert new.tags["lineage.added_to_train"] == "14" and new.tags["lineage.parent_fingerprint"]
    assert new.tags["data.artifact_version_id"] != parent.tags["data.artifact_version_id"]
    assert float(new.tags["holdout.images"]) == 7 and "holdout.new.macro_f1" in new.tags
    assert "holdout.champion.macro_f1" in new.tags

    from zenml.client import Client

    merged = Client().get_artifact_version(new.tags["data.artifact_version_id"]).load()
    parent_data = Client().get_artifact_version(parent.tags["data.artifact_version_id"]).load()
    assert sum(s.startswith("new:") for s in merged.source_ids) == 14
    assert merged.split_counts()["train"] == parent_data.split_counts()["train"] + 14
    for split in ("val", "test"):  # the comparison splits never move
        assert merged.split(split).fingerprint == parent_data.split(split).fingerprint
    assert new.tags["test.fingerprint"] == parent.tags["test.fingerprint"]
    assert new.tags["gate.images"].startswith("val + held-out new images") and new.tags["promotion.test"]


def test_the_same_batch_again_skips_and_says_why(line, smoke_data):  # noqa: F811
    client, tmp = line
    before = versions(client)[-1].version
    batch = tmp / "batch1"
    out = retrain(smoke_config(tmp, batch), smoke_data)
    assert "skipped: 0 new images" in out.stdout + out.stderr
    assert versions(client)[-1].version == before  # nothing registered
    assert champion(client).version == before

    # Forced, the same batch trains, and the gate decides: a gain above 1 is out of reach.
    out = retrain(smoke_config(tmp, batch, force=True, min_improvement=1.0), smoke_data)
    assert "forced" in out.stdout + out.stderr
    forced = versions(client)[-1]
    assert int(forced.version) == int(before) + 1 and forced.tags["promotion.decision"] == "challenger"
    assert champion(client).version == before

    # Forced once more, the same champion and data make the same weights: registered once only.
    out = retrain(smoke_config(tmp, batch, force=True, min_improvement=1.0), smoke_data)
    assert f"v{forced.version} holds these weights already" in out.stdout + out.stderr
    assert versions(client)[-1].version == forced.version
    assert client.get_model_version_by_alias(NAME, "challenger").version == forced.version

    from zenml.client import Client

    zenml_version = Client().get_model_version(NAME)  # this run's, the newest
    assert zenml_version.run_metadata["registry.duplicate_of"] == f"{NAME}/{forced.version}"
    assert zenml_version.stage is None


def test_a_batch_failing_the_quality_gate_stops_before_training(line, smoke_data):  # noqa: F811
    client, tmp = line
    before_versions, before_champion = versions(client)[-1].version, champion(client).version
    files = batch_files(2, first_seed=60_000)
    files["train/happy/blank_1.jpg"] = jpeg_bytes(np.zeros((48, 48), np.uint8))  # a near-blank face
    batch = write_folder(tmp / "bad", files)
    out = retrain(smoke_config(tmp, batch), smoke_data, expect_ok=False)
    assert out.returncode != 0 and "no_blank_images" in out.stdout + out.stderr
    assert versions(client)[-1].version == before_versions and champion(client).version == before_champion

    from zenml.client import Client

    run = Client().get_pipeline("fer_retraining").runs[0]
    ran = {name for name, step in run.steps.items() if step.status.value == "completed"}
    assert "validate_new_data" not in ran and not ran & {"retrain_model", "promote_retrained"}


def test_an_empty_drop_folder_is_no_new_data(line, smoke_data):  # noqa: F811
    client, tmp = line
    before = versions(client)[-1].version
    empty = tmp / "empty"
    empty.mkdir()
    out = retrain(smoke_config(tmp, empty), smoke_data)
    assert "skipped: 0 new images" in out.stdout + out.stderr and "no batch to compare" in out.stdout + out.stderr
    assert versions(client)[-1].version == before


def test_schedule_config_is_the_retraining_config_plus_a_schedule():
    retraining = yaml.safe_load((ROOT / "configs/retraining.yaml").read_text())
    scheduled = yaml.safe_load((ROOT / "configs/schedule.yaml").read_text())
    schedule = scheduled.pop("schedule")
    assert scheduled == retraining

    from zenml.config.schedule import Schedule

    from ferkit.scheduling import validate_cron

    validate_cron(schedule["cron_expression"])
    assert Schedule(**schedule).cron_expression == schedule["cron_expression"]
