"""Calibrated confidence: the temperature fitted on val travels in the checkpoint, and predict,
the served rows and the CLI apply it by default, raw on request, `uncertain` below a threshold."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS, SPLITS
from ferkit.inference.predictor import Predictor
from ferkit.inference.rows import RequestError, predict_rows
from ferkit.metrics import apply_temperature, classification_metrics
from ferkit.models import TrainedModel, build_model
from ferkit.training import TrainConfig
from ferkit.training.train import train
from tests.factories import face

FACES = np.stack([face(seed) for seed in range(6)])


def tiny_model(temperature: float | None = None) -> TrainedModel:
    torch.manual_seed(0)
    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    calibration = {"temperature": temperature} if temperature is not None else {}
    return TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict(), recipe={}, calibration=calibration)


def overconfident_data(n: int = 96) -> FERDataset:
    """Two classes a tiny CNN separates from the brightness of the top or bottom half, with a
    quarter of the val labels flipped, so no temperature makes val's log loss vanish."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, size=(2 * n, 48, 48)).astype(np.uint8)
    labels = np.where(np.arange(2 * n) % 2 == 0, 0, 3)
    images[labels == 0, :24] += 150
    images[labels == 3, 24:] += 150
    splits = np.array([SPLITS.index("train")] * n + [SPLITS.index("val")] * n, dtype=np.uint8)
    flipped = labels.copy()
    flipped[n::4] = np.where(labels[n::4] == 0, 3, 0)
    return FERDataset(images, flipped, splits, np.array([f"f{i}" for i in range(2 * n)]))


class TestTheCheckpointCarriesTheTemperature:
    @pytest.fixture(scope="class")
    def trained(self) -> TrainedModel:
        config = TrainConfig(
            architecture="plain_cnn",
            architecture_kwargs={"widths": [8, 16, 16, 32]},
            epochs=6,
            lr=0.05,
            batch_size=32,
            use_class_weights=False,
            early_stopping_patience=None,
        )
        return train(config, overconfident_data()).model

    def test_training_fits_it_on_val_and_it_lowers_val_log_loss(self, trained):
        calibration = trained.calibration
        assert calibration["fitted_on"] == "val" and calibration["images"] == 96 and calibration["tta"] == "flip"
        assert calibration["log_loss_after"] < calibration["log_loss_before"]
        # The temperature is the val log loss's minimum: a tenth either way is worse.
        data = overconfident_data()
        val = data.split("val")
        raw = Predictor(trained, raw=True).predict_proba(val.images)
        t = trained.temperature

        def loss(temperature: float) -> float:
            return classification_metrics(val.labels, apply_temperature(raw, temperature))["log_loss"]

        assert loss(t) == pytest.approx(calibration["log_loss_after"], abs=1e-4)
        assert loss(t) < loss(t * 1.1) and loss(t) < loss(t / 1.1)

    def test_it_survives_saving_and_loading(self, trained, tmp_path):
        trained.save(tmp_path / "model.pt")
        loaded = TrainedModel.load(tmp_path / "model.pt")
        assert loaded.calibration == trained.calibration and loaded.temperature == trained.temperature

    def test_a_checkpoint_saved_before_calibration_loads_with_temperature_one(self, tmp_path):
        model = tiny_model()
        payload = model._payload()
        del payload["calibration"]
        torch.save(payload, tmp_path / "old.pt")
        assert TrainedModel.load(tmp_path / "old.pt").temperature == 1.0


class TestPredictor:
    def test_calibrated_by_default_and_raw_on_request(self):
        model = tiny_model(temperature=2.5)
        raw = Predictor(model, raw=True).predict_proba(FACES)
        calibrated = Predictor(model).predict_proba(FACES)
        np.testing.assert_allclose(calibrated, apply_temperature(raw, 2.5), atol=1e-6)
        assert (calibrated.max(axis=1) < raw.max(axis=1)).all()  # softened
        np.testing.assert_array_equal(calibrated.argmax(axis=1), raw.argmax(axis=1))  # same labels
        np.testing.assert_allclose(Predictor(model).predict_proba(FACES, raw=True), raw, atol=1e-7)

    def test_a_temperature_fitted_on_other_views_or_not_finite_is_not_applied(self):
        flip_fitted = tiny_model()
        flip_fitted.calibration = {"temperature": 2.5, "tta": "flip"}
        raw = Predictor(flip_fitted, tta="none", raw=True).predict_proba(FACES)
        np.testing.assert_allclose(Predictor(flip_fitted, tta="none").predict_proba(FACES), raw, atol=1e-7)
        assert Predictor(flip_fitted, tta="flip").temperature() == 2.5
        for bad in (float("nan"), float("inf"), -1.0, 0.0, "2"):
            assert tiny_model(temperature=bad).temperature == 1.0

    def test_an_empty_batch_gives_no_rows(self):
        assert Predictor(tiny_model()).predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(EMOTIONS))
        assert Predictor(tiny_model()).predict([]) == []

    def test_uncertain_below_the_threshold(self):
        model = tiny_model()
        confident = Predictor(model, min_confidence=0.0).predict(list(FACES[:2]))
        doubtful = Predictor(model, min_confidence=1.0).predict(list(FACES[:2]))
        for sure, unsure in zip(confident, doubtful):
            assert sure["label"] == unsure["label"] and sure["confidence"] == unsure["confidence"]
            assert sure["confidence"] == pytest.approx(max(sure["probabilities"].values()))
            assert sure["uncertain"] is False and unsure["uncertain"] is True
        with pytest.raises(ValueError, match="min_confidence must be between 0 and 1"):
            Predictor(model, min_confidence=1.5)


class TestServedRows:
    def test_params_choose_raw_and_the_threshold(self):
        predictor = Predictor(tiny_model(temperature=3.0))
        table = pd.DataFrame({"pixels": [FACES[0].tolist(), FACES[1].tolist()]})
        calibrated = predict_rows(predictor, table)
        raw = predict_rows(predictor, table, params={"raw": True, "min_confidence": 0.0})
        np.testing.assert_allclose(
            calibrated[list(EMOTIONS)].to_numpy(float), apply_temperature(raw[list(EMOTIONS)].to_numpy(float), 3.0),
            atol=1e-6,
        )  # fmt: skip
        assert list(calibrated["confidence"]) == pytest.approx(calibrated[list(EMOTIONS)].max(axis=1).tolist())
        assert not raw["uncertain"].any()
        assert predict_rows(predictor, table, params={"min_confidence": 1.0})["uncertain"].all()
        assert not predict_rows(predictor, table, params={"min_confidence": np.float32(0.0)})["uncertain"].any()

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"raw": "yes"}, "param `raw` must be true or false"),
            ({"min_confidence": 1.5}, "param `min_confidence` must be a number from 0 to 1"),
            ({"min_confidence": "high"}, "param `min_confidence` must be a number from 0 to 1"),
            ({"temperature": 2}, "unknown param(s) ['temperature']"),
        ],
    )
    def test_bad_params_are_a_request_error(self, params, message):
        with pytest.raises(RequestError) as error:
            predict_rows(Predictor(tiny_model()), pd.DataFrame({"pixels": [FACES[0].tolist()]}), params=params)
        assert message in str(error.value)


def predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit.cli", "predict", *args], capture_output=True, text=True)


class TestCommandLine:
    @pytest.fixture(scope="class")
    def files(self, tmp_path_factory):
        from PIL import Image

        folder = tmp_path_factory.mktemp("calibrated")
        tiny_model(temperature=2.0).save(folder / "model.pt")
        Image.fromarray(FACES[0]).save(folder / "crop.png")
        return folder

    def test_calibrated_raw_and_uncertain(self, files):
        args = [str(files / "crop.png"), "--model", str(files / "model.pt"), "--no-detect", "--json"]
        (calibrated,) = json.loads(predict(*args).stdout)[0]["faces"]
        (raw,) = json.loads(predict(*args, "--raw").stdout)[0]["faces"]
        expected = apply_temperature(np.array([list(raw["probabilities"].values())]), 2.0)[0]
        np.testing.assert_allclose(list(calibrated["probabilities"].values()), expected, atol=1e-5)
        (unsure,) = json.loads(predict(*args, "--min-confidence", "1").stdout)[0]["faces"]
        assert unsure["uncertain"] is True and unsure["label"] == calibrated["label"]
        text = predict(*args[:-1], "--min-confidence", "1").stdout
        assert f"-> uncertain ({calibrated['label']} " in text

    def test_a_threshold_outside_0_1_is_a_usage_error(self, files):
        result = predict(str(files / "crop.png"), "--model", str(files / "model.pt"), "--min-confidence", "2")
        assert result.returncode == 2 and "--min-confidence must be between 0 and 1" in result.stderr
        assert "Traceback" not in result.stderr
        serve = subprocess.run(
            [sys.executable, "-m", "ferkit.cli", "serve", "--model", str(files / "model.pt"), "--min-confidence", "-1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert serve.returncode == 2 and "--min-confidence must be between 0 and 1" in serve.stderr
