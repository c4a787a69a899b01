"""Architectures from the registry and the self-describing checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.data import EMOTIONS
from ferkit.models import CheckpointError, TrainedModel, available_models, build_model


class TestRegistry:
    @pytest.mark.parametrize("name", available_models())
    def test_forward_shape(self, name):
        model = build_model(name).eval()
        with torch.no_grad():
            logits = model(torch.rand(3, 1, 48, 48))
        assert logits.shape == (3, len(EMOTIONS))
        assert torch.isfinite(logits).all()

    def test_unknown_name_lists_the_available_ones(self):
        with pytest.raises(ValueError, match="unknown model 'resnet9000'.*plain_cnn"):
            build_model("resnet9000")

    def test_widths_come_from_config(self):
        small = build_model("plain_cnn", widths=[8, 8, 8, 8])
        large = build_model("plain_cnn")
        assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in large.parameters()) / 50


class TestTrainedModel:
    def _trained(self) -> TrainedModel:
        net = build_model("plain_cnn", widths=[8, 8, 16, 16])
        return TrainedModel("plain_cnn", {"widths": (8, 8, 16, 16)}, net.state_dict(), recipe={"epochs": 1})

    def test_save_load_round_trip_predicts_the_same(self, tmp_path):
        trained = self._trained()
        trained.save(tmp_path / "m.pt")
        loaded = TrainedModel.load(tmp_path / "m.pt")
        assert loaded.emotions == EMOTIONS and loaded.input_size == 48 and loaded.recipe == {"epochs": 1}
        x = torch.rand(2, 1, 48, 48)
        with torch.no_grad():
            torch.testing.assert_close(trained.build()(x), loaded.build()(x))

    def test_wrong_key_set_fails_naming_the_keys(self):
        trained = self._trained()
        state = dict(trained.state_dict)
        state["extra.weight"] = torch.zeros(1)
        del state["head.3.bias"]
        broken = TrainedModel("plain_cnn", {"widths": (8, 8, 16, 16)}, state)
        with pytest.raises(
            CheckpointError, match=r"missing keys \['head.3.bias'\].*unexpected keys \['extra.weight'\]"
        ):
            broken.build()

    def test_a_foreign_file_is_not_a_checkpoint(self, tmp_path):
        torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
        with pytest.raises(CheckpointError, match="not a ferkit checkpoint"):
            TrainedModel.load(tmp_path / "other.pt")

    def test_weights_hash_follows_the_weights_not_the_history(self, tmp_path):
        trained = self._trained()
        trained.save(tmp_path / "m.pt")
        loaded = TrainedModel.load(tmp_path / "m.pt")
        loaded.history, loaded.recipe = [{"epoch": 1, "seconds": 9.0}], {"epochs": 2}
        assert loaded.weights_sha256() == trained.weights_sha256()  # a copy, a re-run, a cache hit

        nudged = {k: v.clone() for k, v in trained.state_dict.items()}
        nudged["head.3.bias"][0] += 1e-6
        assert (
            TrainedModel("plain_cnn", {"widths": (8, 8, 16, 16)}, nudged).weights_sha256() != trained.weights_sha256()
        )
        relabelled = TrainedModel(
            "plain_cnn", {"widths": (8, 8, 16, 16)}, trained.state_dict, emotions=tuple(reversed(EMOTIONS))
        )
        assert relabelled.weights_sha256() != trained.weights_sha256()
        half = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in trained.state_dict.items()}
        assert TrainedModel("plain_cnn", {"widths": (8, 8, 16, 16)}, half).weights_sha256() != trained.weights_sha256()


class TestQuantize:
    def test_int8_copy_agrees_with_fp32(self):
        from ferkit.inference.predictor import Predictor
        from ferkit.models.quantize import quantize_int8
        from ferkit.training import TrainConfig, fit
        from tests.training.test_training import SMALL, two_class_faces

        x, y = two_class_faces(256, seed=0)
        config = TrainConfig(epochs=3, **SMALL)
        torch.manual_seed(0)
        model = build_model(config.architecture, **config.architecture_kwargs)
        model.load_state_dict(fit(model, x, y, x[:64], y[:64], config).state_dict)
        quantized = quantize_int8(model, x[:128])  # a copy on the CPU, also of a model fitted on CUDA
        model.cpu().eval()  # the fp32 model, beside it
        test_x, _ = two_class_faces(128, seed=5)
        inputs = torch.from_numpy(test_x).unsqueeze(1).float() / 255
        with torch.no_grad():
            agree = (quantized(inputs).argmax(1) == model(inputs).argmax(1)).float().mean()
        assert agree >= 0.95
        assert any("quantized" in type(m).__module__ for m in quantized.modules())  # really int8 kernels

        trained = TrainedModel(config.architecture, dict(config.architecture_kwargs), model.state_dict())
        probs = Predictor(trained, tta="none", int8_calibration=x[:128]).predict_proba(test_x[:5])
        assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)

    def test_no_calibration_images_is_refused(self):
        from ferkit.models.quantize import quantize_int8

        with pytest.raises(ValueError, match="calibration images"):
            quantize_int8(build_model("plain_cnn"), np.zeros((0, 48, 48), np.uint8))
