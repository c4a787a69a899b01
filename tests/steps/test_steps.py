"""Each step through `entrypoint(...)`: no stack, no MLflow run, real data flowing through."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ferkit.data import DataError, FERDataset, file_sha256
from ferkit.models import TrainedModel
from ferkit.models.predict import predict_proba
from ferkit.training import TrainConfig
from steps.drift.report_drift import report_drift
from steps.evaluate.evaluate_model import evaluate_model
from steps.ingest.fingerprint_source import fingerprint_source
from steps.ingest.ingest_fer2013 import ingest_fer2013
from steps.register.register_model import register_model
from steps.train.train_model import train_model
from steps.weights.compute_class_weights import compute_class_weights
from tests.factories import image_tree, write_zip


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[FERDataset, pd.DataFrame]:
    path = write_zip(tmp_path_factory.mktemp("d") / "fer.zip", image_tree(6))
    return ingest_fer2013.entrypoint(source_sha256=file_sha256(path), data_path=str(path))


def test_fingerprint_source_changes_with_the_file(tmp_path):
    path = write_zip(tmp_path / "a.zip", image_tree(1))
    first = fingerprint_source.entrypoint(data_path=str(path))
    assert first == fingerprint_source.entrypoint(data_path=str(path))
    write_zip(path, image_tree(2))
    assert fingerprint_source.entrypoint(data_path=str(path)) != first


def test_ingest_returns_data_set_and_manifest(ingested):
    data, manifest = ingested
    assert isinstance(data, FERDataset) and len(data) == 6 * 7 * 3
    assert len(manifest) == len(data) and set(manifest["split"]) == {"train", "val", "test"}


def test_ingest_refuses_a_file_that_changed_since_it_was_hashed(tmp_path):
    path = write_zip(tmp_path / "a.zip", image_tree(1))
    with pytest.raises(DataError, match="changed while the pipeline was reading it"):
        ingest_fer2013.entrypoint(source_sha256="0" * 64, data_path=str(path))


def test_class_weights_are_inverse_frequency(ingested):
    weights = compute_class_weights.entrypoint(ingested[0])
    assert list(weights.weights) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    np.testing.assert_allclose(weights.as_list(), 1.0)  # 6 per class: balanced


def test_class_weights_step_passes_power_on(tmp_path):
    per_class = {"angry": 2, "disgust": 1, "fear": 2, "happy": 6, "sad": 2, "surprise": 2, "neutral": 3}
    path = write_zip(tmp_path / "fer.zip", image_tree(per_class))
    data, _ = ingest_fer2013.entrypoint(source_sha256=file_sha256(path), data_path=str(path))
    full = compute_class_weights.entrypoint(data)
    root = compute_class_weights.entrypoint(data, power=0.5)
    assert root.power == 0.5
    np.testing.assert_allclose(root.as_list(), np.sqrt(full.as_list()))


def test_train_then_evaluate(ingested):
    data = ingested[0]
    weights = compute_class_weights.entrypoint(data)
    config = TrainConfig(epochs=1, batch_size=16, architecture_kwargs={"widths": [8, 8, 8, 8]})
    model = train_model.entrypoint(fer_dataset=data, class_weights=weights, config=config)
    assert isinstance(model, TrainedModel) and model.recipe["epochs"] == 1 and len(model.history) == 1
    metrics, report, val_probs = evaluate_model.entrypoint(model=model, fer_dataset=data, bootstrap_resamples=20)
    assert {
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "weighted_f1",
        "log_loss",
        "ece",
        "macro_f1_ci_low",
        "tta.ten_crop.accuracy",
        "leakage_free.accuracy",
        "images",
    } <= set(metrics)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["log_loss"] > 0 and metrics["images"] == 42
    assert "Named confusions" in str(report)
    # The val probabilities the temperature was fitted on, for the champion gate: the model's, on val.
    val = data.split("val")
    views = "flip" if model.recipe["tta_flip"] else "none"
    assert (val_probs.split, val_probs.mode, val_probs.probs.shape) == ("val", views, (len(val), 7))
    assert val_probs.serves(val.fingerprint, model.weights_sha256(), views)
    np.testing.assert_allclose(val_probs.probs, predict_proba(model.build(), val.images, tta=views), atol=1e-6)
    _, _, nothing = evaluate_model.entrypoint(
        model=model, fer_dataset=data, bootstrap_resamples=5, fit_temperature=False
    )
    assert not nothing.serves(val.fingerprint, model.weights_sha256(), views) and len(nothing.probs) == 0
    html, drift = report_drift.entrypoint(fer_dataset=data, model=model, sample_size=30)
    assert "<html" in str(html).lower()
    assert {"drift_share", "p_value.mean", "p_value.emb_pc1"} <= set(drift)


def test_a_rerun_of_the_train_step_says_it_resumes_from_the_saved_state(ingested, tmp_path, capsys):
    data = ingested[0]
    weights = compute_class_weights.entrypoint(data)
    config = TrainConfig(epochs=1, batch_size=16, architecture_kwargs={"widths": [8, 8, 8, 8]})
    first = train_model.entrypoint(fer_dataset=data, class_weights=weights, config=config, resume_dir=str(tmp_path))
    assert "resuming" not in capsys.readouterr().out
    again = train_model.entrypoint(fer_dataset=data, class_weights=weights, config=config, resume_dir=str(tmp_path))
    (state,) = tmp_path.glob("train-*.pt")
    assert f"train_model: resuming from the training state saved in {state}" in capsys.readouterr().out
    assert again.weights_sha256() == first.weights_sha256()


def test_register_without_mlflow_run_says_what_is_missing(ingested):
    model = TrainedModel("plain_cnn", {}, {})
    with pytest.raises(RuntimeError, match="needs an active MLflow run"):
        register_model.entrypoint(model=model, test_metrics={}, fer_dataset=ingested[0])


def test_split_probabilities_survive_their_materializer(tmp_path):
    from ferkit.inference.evaluation import SplitProbabilities
    from steps.materializers import SplitProbabilitiesMaterializer

    probs = np.random.default_rng(0).dirichlet(np.ones(7), size=5).astype(np.float32)
    saved = SplitProbabilities("val", "multi_view", "f" * 64, "w" * 64, probs)
    SplitProbabilitiesMaterializer(str(tmp_path / "a")).save(saved)
    loaded = SplitProbabilitiesMaterializer(str(tmp_path / "a")).load(SplitProbabilities)
    assert (loaded.split, loaded.mode, loaded.fingerprint, loaded.weights_sha256) == (
        "val",
        "multi_view",
        "f" * 64,
        "w" * 64,
    )
    assert loaded.probs.dtype == np.float32 and np.array_equal(loaded.probs, probs)
    assert loaded.serves("f" * 64, "w" * 64, "multi_view") and not loaded.serves("f" * 64, "w" * 64, "flip")


class TestNewDataIntake:
    """What users drop into `data/new` for retraining: read as they meant it, or refused by name."""

    @staticmethod
    def ingest(folder):
        from steps.retrain.new_data import ingest_new_data

        return ingest_new_data.entrypoint(source_sha256=file_sha256(folder), new_data_path=str(folder))[0]

    @staticmethod
    def drop(folder, files: dict) -> None:
        for name, content in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)

    def test_a_folder_of_notes_and_hidden_files_is_no_new_data(self, tmp_path):
        self.drop(tmp_path, {".DS_Store": b"\0", ".gitkeep": b"", "README.txt": b"drop faces here",
                             "train/happy/.DS_Store": b"\0"})  # fmt: skip
        assert len(self.ingest(tmp_path)) == 0

    def test_files_the_layout_would_leave_out_are_named(self, tmp_path):
        faces = image_tree(1)
        self.drop(tmp_path, {name: content for name, content in list(faces.items())[:3]})
        good = next(iter(faces.values()))
        self.drop(tmp_path, {"Train/angry/c.png": good, "happy/e.png": good, "train/surprise/f.heic": good,
                             "train/neutral/.hidden.png": good, "notes.txt": b"mine"})  # fmt: skip
        with pytest.raises(DataError) as caught:
            self.ingest(tmp_path)
        message = str(caught.value)
        assert "3 file(s) are not in the layout train/<emotion>/<image>" in message
        for name in ("Train/angry/c.png (outside", "happy/e.png (outside", "train/surprise/f.heic (not an image"):
            assert name in message, message
        assert "notes.txt" not in message and ".hidden" not in message

    def test_a_zip_dropped_in_the_folder_is_the_batch(self, tmp_path):
        write_zip(tmp_path / "batch.zip", image_tree(1))
        assert len(self.ingest(tmp_path)) == 7 * 3
        write_zip(tmp_path / "second.zip", image_tree(1))
        with pytest.raises(DataError, match=r"2 zips or CSVs \(batch.zip, second.zip\); drop one batch at a time"):
            self.ingest(tmp_path)

    def test_a_batch_that_changed_since_it_was_hashed_is_refused(self, tmp_path):
        from steps.retrain.new_data import ingest_new_data

        self.drop(tmp_path, dict(list(image_tree(1).items())[:3]))
        before = file_sha256(tmp_path)
        self.drop(tmp_path, dict(list(image_tree(1).items())[3:5]))  # two more faces, after the hash
        with pytest.raises(DataError, match="changed while the pipeline was reading it"):
            ingest_new_data.entrypoint(source_sha256=before, new_data_path=str(tmp_path))
