"""The oversampling step through `entrypoint(...)`, logging into a real MLflow run (SQLite in a temp folder)."""

from __future__ import annotations

import mlflow
import pytest

from ferkit.gan.oversample import OversampleConfig, OversampleError, TrainedGenerator
from ferkit.gan.quality import QualityConfig
from steps.oversample.oversample_minority import oversample_minority
from tests.gan.test_oversample import TINY_GAN, TINY_QUALITY, data  # noqa: F401  (the fixture)


@pytest.fixture
def tracked(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.MlflowClient().create_experiment("gan", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("gan")
    yield mlflow.MlflowClient()
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri("")


def test_enabled_step_adds_faces_and_logs_its_quality(data, tracked):  # noqa: F811
    config = OversampleConfig(enabled=True, targets={"disgust": "2x"}, min_images_per_class=2, gan=TINY_GAN)
    with mlflow.start_run() as run:
        out, generator, report = oversample_minority.entrypoint(
            fer_dataset=data, config=config, quality=QualityConfig(**TINY_QUALITY)
        )
    assert out.synthetic.sum() == 4 and isinstance(generator, TrainedGenerator)
    assert report["added"] == {"disgust": 4} and set(report["classes"]) == {"disgust"}
    logged = tracked.get_run(run.info.run_id).data
    assert logged.metrics["oversample.added.disgust"] == 4
    assert {
        "gan.fid.disgust",
        "gan.kid.disgust",
        "gan.agreement.disgust",
        "gan.copy_share.disgust",
        "gan.d_loss",
        "gan.g_loss",
        "gan.train_seconds",
    } <= set(logged.metrics)
    assert [m.step for m in tracked.get_metric_history(run.info.run_id, "gan.d_loss")] == [3, 6]
    assert logged.params["oversample.targets.disgust"] == "2x"
    paths = {a.path for a in tracked.list_artifacts(run.info.run_id, "gan")}
    assert {"gan/quality.md", "gan/quality.json", "gan/nn_distance.png", "gan/generator.pt"} <= paths
    assert {a.path for a in tracked.list_artifacts(run.info.run_id, "gan/samples")} == {"gan/samples/disgust.png"}


def test_disabled_step_passes_through_without_a_generator(data, tracked):  # noqa: F811
    with mlflow.start_run():
        out, generator, report = oversample_minority.entrypoint(fer_dataset=data)
    assert out is data and generator is None and report == {"enabled": False, "added": {}}


def test_too_few_images_stop_the_step_before_training(data, tracked):  # noqa: F811
    config = OversampleConfig(enabled=True, targets={"disgust": "3x"}, min_images_per_class=50, gan=TINY_GAN)
    with mlflow.start_run(), pytest.raises(OversampleError, match="class 'disgust' has 4 real training images"):
        oversample_minority.entrypoint(fer_dataset=data, config=config)
