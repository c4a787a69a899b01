"""`fer_training` end to end through the ZenML CLI, in the tests' own ZenML/MLflow home.

conftest.py points ZENML_CONFIG_PATH and ZENML_REPOSITORY_PATH at a temporary
folder, so the user's ZenML state and this checkout's `.zen` stay untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.factories import image_tree, write_zip

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _run(args: list[str], data_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "FER2013_PATH": str(data_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def run_smoke(data_path: Path) -> subprocess.CompletedProcess:
    return _run(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.fer_training", "-c", "configs/smoke.yaml"], data_path
    )


def latest_run_steps() -> dict[str, str]:
    """step name -> status of the newest fer_training run."""
    from zenml.client import Client

    run = Client().get_pipeline("fer_training").runs[0]
    assert run.status.value == "completed"
    return {name: step.status.value for name, step in run.steps.items()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> str:
    """The local stack, set up exactly as `make stack` does; returns the MLflow URI."""
    out = _run([str(BIN / "ferkit"), "stack", "--root", os.environ["ZENML_REPOSITORY_PATH"]], Path("unused"))
    return out.stdout.strip().splitlines()[-1].split(": ", 1)[1]


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory, request) -> Path:
    """The real archive when available (CI has it), else generated faces."""
    for candidate in (os.environ.get("FER2013_PATH", ""), str(ROOT.parent / "shared/data/fer2013.zip")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return write_zip(tmp_path_factory.mktemp("data") / "fer.zip", image_tree(12))


def test_smoke_run_tracks_and_registers(stack, smoke_data):
    logs = run_smoke(smoke_data)
    steps = latest_run_steps()
    assert set(steps) == {
        "fingerprint_source",
        "ingest_fer2013",
        "validate_data",
        "oversample_minority",
        "compute_class_weights",
        "train_model",
        "evaluate_model",
        "report_drift",
        "register_model",
    }

    mlflow.set_tracking_uri(stack)
    runs = mlflow.search_runs(experiment_names=["fer_training"], output_format="list", order_by=["start_time DESC"])
    run = runs[0]
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss"):
        assert 0 <= run.data.metrics[f"test.{name}"] <= (1 if name != "log_loss" else 50)
    assert "val.macro_f1" in run.data.metrics and run.data.params["train.epochs"] == "2"
    assert run.data.metrics["train.epochs_trained"] == 2 and run.data.params["train.ended_by"] == "all epochs"
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/reliability_diagram.png",
        "evaluation/report.html",
    } <= artifacts
    assert {"test.ece", "test.macro_f1_ci_low", "test.tta.ten_crop.accuracy"} <= set(run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} >= {"config/resolved.yaml"}
    quality = {a.path for a in client.list_artifacts(run.info.run_id, "quality")}
    assert quality >= {"quality/report.md", "quality/great_expectations.json", "quality/report.json"}
    assert any(a.path.endswith(".html") for a in client.list_artifacts(run.info.run_id, "drift"))
    assert "drift.drift_share" in run.data.metrics and "quality.duplicate_groups" in run.data.metrics

    # GAN oversampling (on in the smoke config): synthetic disgust faces in train only, the
    # generator an artifact, its quality scores and sample grids in MLflow.
    from zenml.client import Client

    zenml_run = Client().get_pipeline("fer_training").runs[0]
    validated = zenml_run.steps["validate_data"].outputs["validated_dataset"][0].load()
    oversampled = zenml_run.steps["oversample_minority"].outputs["oversampled_dataset"][0].load()
    real_disgust = validated.class_counts("train")["disgust"]
    assert oversampled.synthetic.sum() == real_disgust == run.data.metrics["oversample.added.disgust"]  # 2x
    assert set(oversampled.splits[oversampled.synthetic]) == {0}  # train
    assert oversampled.split("test").fingerprint == validated.split("test").fingerprint
    assert int(run.data.params["model.train_images"]) == len(validated.split("train")) + real_disgust
    generator = zenml_run.steps["oversample_minority"].outputs["generator"][0]
    from zenml.enums import ArtifactType

    assert generator.type == ArtifactType.MODEL
    assert generator.load().config["steps"] == 20
    assert {"gan.fid.disgust", "gan.agreement.disgust", "gan.copy_share.disgust", "gan.d_loss"} <= set(run.data.metrics)
    assert "gan/samples/disgust.png" in {a.path for a in client.list_artifacts(run.info.run_id, "gan/samples")}

    versions = client.search_model_versions("name='fer_emotion'")
    newest = max(versions, key=lambda v: int(v.version))
    assert newest.run_id == run.info.run_id
    assert float(newest.tags["test.macro_f1"]) == pytest.approx(run.data.metrics["test.macro_f1"], abs=1e-4)

    # The gate took the evaluation's val probabilities (same views) rather than scoring val again.
    from ferkit.metrics import classification_metrics

    assert "probabilities on val" in logs.stdout + logs.stderr
    assert "come from its evaluation" in logs.stdout + logs.stderr
    val_probs = zenml_run.steps["evaluate_model"].outputs["val_probabilities"][0].load()
    assert val_probs.serves(validated.split("val").fingerprint, newest.tags["model.weights_sha256"], val_probs.mode)
    gate = classification_metrics(validated.split("val").labels, val_probs.probs)["macro_f1"]
    assert float(newest.tags["gate.macro_f1"]) == pytest.approx(gate, abs=1e-6)

    # The first model of a fresh registry is the champion; the decision is on the version.
    assert client.get_model_version_by_alias("fer_emotion", "champion").version == newest.version
    assert newest.tags["promotion.decision"] == "champion"
    assert run.data.params["model.backbone"] == "plain_cnn"

    # The same decision on the ZenML Model Control Plane.
    from zenml.client import Client

    zenml_version = Client().get_model_version("fer_emotion", newest.tags["zenml.model_version_id"])
    assert zenml_version.stage == "production"

    # The champion resolves by URI for `ferkit evaluate`.
    out = _run(
        [str(BIN / "ferkit"), "evaluate", "--model", "models:/fer_emotion@champion", "--json", "--bootstrap", "20"],
        smoke_data,
    )
    evaluated = json.loads(out.stdout[out.stdout.index("{") :])
    assert evaluated["images"] > 0 and 0 <= evaluated["metrics"]["macro_f1"] <= 1

    # The registered pyfunc loads and labels encoded face images.
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    from ferkit.data.labels import EMOTIONS
    from ferkit.metrics import apply_temperature
    from tests.factories import face

    buffer = io.BytesIO()
    Image.fromarray(face(1)).save(buffer, format="PNG")
    model = mlflow.pyfunc.load_model(f"models:/fer_emotion/{newest.version}")
    out = model.predict(pd.DataFrame({"image": [buffer.getvalue()] * 3}))
    assert out.shape == (3, 11) and out.columns[0] == "label" and (out["error"] == "").all()
    # Calibrated by default with the temperature the checkpoint carries, fitted on val in training.
    raw = model.predict(pd.DataFrame({"image": [buffer.getvalue()]}), params={"raw": True})
    temperature = mlflow.models.get_model_info(f"models:/fer_emotion/{newest.version}").metadata["temperature"]
    assert temperature > 0 and temperature != 1.0
    expected = apply_temperature(raw[list(EMOTIONS)].to_numpy(float), temperature)
    np.testing.assert_allclose(out.loc[[0], list(EMOTIONS)].to_numpy(float), expected, atol=1e-5)


def test_ingest_is_cached_until_the_file_changes(stack, tmp_path):
    data = write_zip(tmp_path / "fer.zip", image_tree(8))
    run_smoke(data)
    assert latest_run_steps()["ingest_fer2013"] == "completed"

    run_smoke(data)
    steps = latest_run_steps()
    assert steps["ingest_fer2013"] == "cached"
    assert steps["oversample_minority"] == "cached"  # same data, same GAN config: no GAN training
    assert steps["fingerprint_source"] == "completed"  # always hashes the file

    write_zip(data, image_tree(9))  # same path, new content
    run_smoke(data)
    steps = latest_run_steps()
    assert steps["ingest_fer2013"] == "completed" and steps["oversample_minority"] == "completed"


def test_batch_inference_predicts_a_folder_with_the_champion(stack, smoke_data, tmp_path):
    """Runs after the smoke training above, whose model became the champion."""
    import numpy as np
    import yaml
    from PIL import Image
    from skimage import data as skdata

    from tests.factories import face

    folder = tmp_path / "faces"
    folder.mkdir()
    Image.fromarray(skdata.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(skdata.astronaut()[:, ::-1]).save(folder / "astronaut_mirrored.jpg")
    for i in range(3):
        Image.fromarray(np.kron(face(i), np.ones((4, 4), np.uint8))).save(folder / f"crop_{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    config = yaml.safe_load((ROOT / "configs/batch_inference.yaml").read_text())
    config["parameters"]["image_dir"] = str(folder)
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(config))
    _run(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.fer_batch_inference", "-c", str(tmp_path / "batch.yaml")],
        smoke_data,
    )

    from zenml.client import Client

    run = Client().get_pipeline("fer_batch_inference").runs[0]
    assert run.status.value == "completed"
    predictions = run.steps["predict_folder"].outputs["predictions"][0].load()
    by_file = predictions.groupby("file")
    assert set(by_file.groups) == {
        "astronaut.png",
        "astronaut_mirrored.jpg",
        "crop_0.png",
        "crop_1.png",
        "crop_2.png",
        "broken.jpg",
    }
    # Noise is no face: reported as such, not guessed at.
    assert (predictions[predictions["file"].str.startswith("crop_")]["error"] == "no face found").all()
    astronaut = predictions[predictions["file"] == "astronaut.png"].iloc[0]
    assert astronaut["error"] == "" and astronaut["label"] in (
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    )
    assert predictions[predictions["file"] == "broken.jpg"].iloc[0]["error"].startswith("cannot read image")
    assert run.steps["predict_folder"].config.parameters["int8"] is True  # the config's fast path
    drift = run.steps["report_batch_drift"].outputs["batch_drift_metrics"][0].load()
    assert 0 <= drift["drift_share"] <= 1 and "p_value.entropy" in drift  # two faces: tested


def test_paper_config_runs_end_to_end_with_tiny_epochs(stack, smoke_data, tmp_path):
    """configs/paper.yaml as `make train CONFIG=configs/paper.yaml` runs it (the same `zenml pipeline run`),
    with one batch per phase on four images per class. `weights: imagenet` is served from a torch hub
    cache this test writes (random weights under torchvision's file name): nothing is downloaded."""
    import torch
    import torchvision
    import yaml

    config = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    config["steps"]["ingest_fer2013"]["parameters"]["limit_per_class"] = 4
    config["steps"]["report_drift"]["parameters"]["sample_size"] = 50
    oversample = config["steps"]["oversample_minority"]["parameters"]
    assert oversample["config"]["enabled"] is True
    oversample["config"].update(min_images_per_class=2, gan={"width": 4, "z_dim": 8, "batch_size": 8, "steps": 2})
    oversample["quality"] = {
        "judge_epochs": 1,
        "judge_widths": [4, 8],
        "judge_max_batches": 1,
        "samples_per_class": 8,
        "kid_subsets": 1,
        "kid_subset_size": 4,
    }
    train = config["steps"]["train_model"]["parameters"]["config"]
    for phase in train["phases"]:
        phase["epochs"] = 1
    # fp32: on a CPU without native bf16 (AVX2 only) bf16 autocast is emulated, about 5x slower than fp32
    # for ResNet50 at 224 px; bf16 itself is covered by tests/training (CPU) and tests/models/test_gpu.py.
    train.update(batch_size=8, max_batches_per_epoch=1, eval_batch_size=32, precision="fp32")
    (tmp_path / "paper_tiny.yaml").write_text(yaml.safe_dump(config))

    torch_home = tmp_path / "torch"
    enum = torchvision.models.get_model_weights("resnet50").DEFAULT
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(
        torchvision.models.resnet50().state_dict(), torch_home / "hub" / "checkpoints" / os.path.basename(enum.url)
    )
    env_extra = {"TORCH_HOME": str(torch_home)}
    args = [str(BIN / "zenml"), "pipeline", "run", "pipelines.fer_training", "-c", str(tmp_path / "paper_tiny.yaml")]
    env = {**os.environ, "FER2013_PATH": str(smoke_data), "PYTHONPATH": str(ROOT), **env_extra}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    latest_run_steps()  # completed

    mlflow.set_tracking_uri(stack)
    run = mlflow.search_runs(experiment_names=["fer_training"], output_format="list", order_by=["start_time DESC"])[0]
    assert run.data.params["model.backbone"] == "resnet50"
    assert run.data.params["train.epochs"] == "5" and "train.optimizer" not in run.data.params  # the phases'
    assert [run.data.params[f"train.phase{i}.name"] for i in range(5)] == [
        "frozen_backbone",
        "unfreeze_160_175",
        "unfreeze_140_175",
        "unfreeze_100_175",
        "head_only",
    ]
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train.phase")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2, 3, 4]
    trainable = {
        m.step: m.value for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "train.trainable_parameters")
    }
    assert trainable[1] < trainable[2] < trainable[3] < trainable[4] and trainable[5] < trainable[1]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "training")}
    assert "training/training_curves.png" in artifacts
    assert 0 <= run.data.metrics["test.macro_f1"] <= 1


def test_compare_trains_each_row_once_and_reports_the_table(stack, smoke_data, tmp_path):
    import yaml
    from PIL import Image

    spec = yaml.safe_load((ROOT / "configs/compare_backbones.yaml").read_text())
    spec.update(
        limit_per_class=4,
        epochs=1,
        experiment_name="fer_backbones_test",
        registered_model_name="fer_backbones_test",
        train_overrides={"max_batches_per_epoch": 1, "batch_size": 8},
        step_overrides={**spec["step_overrides"], "report_drift": {"sample_size": 50}},
        backbones={"xception": {"dim": 32}, "fer_vgg": {"dim": 32}},
    )
    spec.pop("baselines")
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ferkit = str(BIN / "ferkit")
    command = [
        ferkit,
        "compare",
        str(tmp_path / "compare.yaml"),
        "--out",
        str(tmp_path / "report"),
        "--speed-faces",
        "64",
    ]
    out = _run(command, smoke_data)

    mlflow.set_tracking_uri(stack)
    runs = mlflow.search_runs(experiment_names=["fer_backbones_test"], output_format="list")
    trained = [r for r in runs if "backbone" in r.data.tags]
    assert sorted(r.data.tags["backbone"] for r in trained) == ["fer_vgg", "xception"]
    assert sorted(r.data.params["model.backbone"] for r in trained) == ["fer_vgg", "xception"]
    for run in trained:  # the compare view lines every run up on the same names
        figures = {"test.macro_f1", "test.recall.fear", "benchmark.inference_faces_per_second"}
        assert figures | {"benchmark.train_images_per_second"} <= set(run.data.metrics)
    (summary,) = [r for r in runs if r.data.tags.get("comparison.summary") == "true"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(summary.info.run_id, "comparison")}
    assert artifacts == {f"comparison/comparison.{ext}" for ext in ("md", "json", "png")}

    table = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert [r["row"] for r in table["rows"]] == ["xception", "fer_vgg"]
    by_row = {r["row"]: r for r in table["rows"]}
    assert by_row["xception"]["parameters_m"] > 10 * by_row["fer_vgg"]["parameters_m"]
    for row in table["rows"]:
        assert 0 <= row["balanced_accuracy"] <= 1 and row["inference_faces_per_second"] > 0
        assert row["train_images_per_second"] > 0 and row["log_loss"] > 0
    assert table["input_size"] == 48 and table["epochs"] == 1
    assert Image.open(tmp_path / "report" / "comparison.png").format == "PNG"
    assert out.stdout.count("xception") >= 2  # the run and the printed table

    versions = mlflow.MlflowClient().search_model_versions("name='fer_backbones_test'")
    assert sorted(v.tags["compare.row"] for v in versions) == ["fer_vgg", "xception"]
    listed = _run([ferkit, "versions", "--name", "fer_backbones_test"], smoke_data).stdout.splitlines()
    assert listed[0].split()[:2] == ["backbone", "params"] and listed[0].split()[-1] == "version"
    acc = {line.split()[0]: line.split()[2] for line in listed[1:]}
    assert acc == {r["row"]: f"{100 * r['accuracy']:.2f}" for r in table["rows"]}

    again = _run(command, smoke_data)
    assert again.stdout.count("done already") == 2  # a finished row is not trained again
    assert len(mlflow.MlflowClient().search_model_versions("name='fer_backbones_test'")) == 2


def test_make_train_with_a_budget_trains_the_epochs_that_fit(tmp_path):
    """`make train BUDGET=<minutes>` as typed, in its own home: the rehearsal's plan is printed, the
    100,000 configured epochs (far more than half a minute holds anywhere) shrink to what fits, that
    many train with the config's lighter regularisation for so short a plan (or fewer where the
    budget's deadline comes first, which the run then says), and the plan is kept beside the
    resume state."""
    import re

    import yaml

    smoke = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    smoke["parameters"]["data_path"] = str(write_zip(tmp_path / "fer.zip", image_tree(12)))
    smoke["steps"]["oversample_minority"]["parameters"]["config"]["enabled"] = False
    train_config = smoke["steps"]["train_model"]["parameters"]["config"]
    train_config.update(epochs=100_000, architecture_kwargs={"widths": [8, 8, 16, 16]},
                        short_budget={"max_share": 0.25, "augment_strength": 0.5, "dropout": 0.05})  # fmt: skip
    config = tmp_path / "long_smoke.yaml"
    config.write_text(yaml.safe_dump(smoke))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "FERKIT_", "MLFLOW_", "MAKE"))}
    command = ["make", "train", f"CONFIG={config}", "BUDGET=0.5", f"FERKIT_HOME={home}"]
    done = subprocess.run(command, cwd=ROOT, env={**env, "FERKIT_NO_PROGRESS": "1"}, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    planned = re.search(r"^time budget 0\.5 min: (\d+) of 100000 epochs fit here.*"
                        r"lighter regularisation: augment_strength 0\.5, dropout 0\.05$", log, re.MULTILINE)  # fmt: skip
    assert planned, log[-5000:]
    epochs = int(planned.group(1))
    assert 1 <= epochs < 100_000
    (budget_config,) = (home / "budget").glob("long_smoke-*-0.5min.yaml")  # named by the config's path and budget
    written = yaml.safe_load(budget_config.read_text())
    assert written["steps"]["train_model"]["parameters"]["config"]["time_budget_minutes"] == 0.5
    (plan,) = (home / "resume").glob("train-*.budget.json")
    assert json.loads(plan.read_text())["epochs"] == epochs
    assert json.loads(plan.read_text())["lightened"] == {"augment_strength": 0.5, "dropout": 0.05}

    (store,) = home.glob("zenml/local_stores/*/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    (run,) = mlflow.search_runs(experiment_names=["fer_training"], output_format="list")
    assert run.data.params["train.budget.epochs"] == str(epochs) and run.data.params["train.epochs"] == "100000"
    assert run.data.params["train.budget.lightened.augment_strength"] == "0.5"
    assert run.data.params["train.budget.lightened.dropout"] == "0.05"
    client = mlflow.MlflowClient()
    trained = len(client.get_metric_history(run.info.run_id, "train.loss"))
    # All the planned epochs, unless the machine ran slower than its rehearsal and the budget's
    # deadline ended the training early, which the last epoch's metrics and the log then say.
    stopped = client.get_metric_history(run.info.run_id, "train.stopped_by_time_budget")
    assert run.data.metrics["train.epochs_trained"] == trained
    if trained < epochs:
        assert [(m.step, m.value) for m in stopped] == [(trained, 1.0)], log[-5000:]
        assert f"time budget: training ends after epoch {trained} of {epochs}" in log
        assert run.data.params["train.ended_by"] == "time budget"
    else:
        assert trained == epochs and not stopped and run.data.params["train.ended_by"] == "all epochs"


def test_make_train_with_a_deadline_cuts_the_schedules_tail(tmp_path):
    """A config's deadline through `make train` as typed, in its own home: 10,000 configured epochs
    at a pace far under the 12 s each that a cut of at most 99.99% allows, so the deadline is armed
    at the first scored epoch and the training ends after the last epoch that ends within its 12 s
    (0.2 min); the run says so and MLflow records why the training ended."""
    import re

    import yaml

    smoke = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    smoke["parameters"]["data_path"] = str(write_zip(tmp_path / "fer.zip", image_tree(12)))
    smoke["steps"]["oversample_minority"]["parameters"]["config"]["enabled"] = False
    train_config = smoke["steps"]["train_model"]["parameters"]["config"]
    train_config.update(epochs=10_000, architecture_kwargs={"widths": [8, 8, 16, 16]},
                        deadline={"minutes": 0.2, "max_cut": 0.9999})  # fmt: skip
    config = tmp_path / "deadline_smoke.yaml"
    config.write_text(yaml.safe_dump(smoke))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "FERKIT_", "MLFLOW_", "MAKE"))}
    done = subprocess.run(["make", "train", f"CONFIG={config}", f"FERKIT_HOME={home}"], cwd=ROOT,
                          env={**env, "FERKIT_NO_PROGRESS": "1"}, capture_output=True, text=True, timeout=900)  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    assert re.search(r"^deadline 0\.2 min: at this pace \(.+ an epoch\) the training takes about .+; it ends at the "
                     r"deadline", log, re.MULTILINE), log[-5000:]  # fmt: skip
    cut = re.search(r"^deadline: training ends after epoch (\d+) of 10000", log, re.MULTILINE)
    assert cut, log[-5000:]
    trained = int(cut.group(1))

    (store,) = home.glob("zenml/local_stores/*/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    (run,) = mlflow.search_runs(experiment_names=["fer_training"], output_format="list")
    assert run.data.params["train.ended_by"] == "deadline" and run.data.metrics["train.epochs_trained"] == trained
    stopped = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train.stopped_by_deadline")
    assert [(m.step, m.value) for m in stopped] == [(trained, 1.0)]
    assert 1 <= run.data.metrics["train.best_epoch"] <= trained
