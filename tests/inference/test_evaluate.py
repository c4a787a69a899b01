"""evaluate(): every figure on a small data set, TTA views, leakage-free subset, the report files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.data import FERDataset
from ferkit.inference import evaluate, write_report
from ferkit.models import TrainedModel, build_model
from ferkit.models import predict as predict_module
from ferkit.models.predict import TTA_MODES, predict_proba, predict_proba_modes, to_input
from ferkit.quality.checks import train_copy_mask
from tests.factories import face


def small_data(classes=range(7), per=4) -> FERDataset:
    images, labels, splits = [], [], []
    seed = 0
    for split in (0, 1, 2):
        for c in classes:
            for _ in range(per):
                seed += 1
                images.append(face(seed))
                labels.append(c)
                splits.append(split)
    return FERDataset(np.stack(images), labels, splits, [f"i{i}" for i in range(len(images))])


def tiny_model(seed=0) -> TrainedModel:
    torch.manual_seed(seed)
    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    return TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict(), recipe={"tta_flip": True})


class TestEvaluate:
    def test_all_figures_present_and_consistent(self):
        data = small_data()
        result = evaluate(tiny_model(), data, bootstrap_resamples=50)
        m = result.metrics
        assert result.images == 28 and result.tta == "flip"
        assert m["balanced_accuracy_ci_low"] <= m["balanced_accuracy"] <= m["balanced_accuracy_ci_high"]
        assert set(result.tta_table) == {"flip", "none", "ten_crop", "multi_scale"}
        assert result.tta_table["flip"]["accuracy"] == m["accuracy"]
        assert result.temperature is not None and result.temperature > 0
        assert {"confusion.fear_to_surprise", "ece"} <= set(m)
        flat = result.flat_metrics()
        assert "tta.ten_crop.macro_f1" in flat and "calibrated.log_loss" in flat
        recall = result.per_class.set_index("emotion")["recall"]
        assert flat["recall.fear"] == recall["fear"] and flat["recall.disgust"] == recall["disgust"]

    def test_fewer_classes_are_scored_over_those_present(self):
        data = small_data(classes=(3, 6))
        result = evaluate(tiny_model(), data, fit_temperature_on=None, bootstrap_resamples=20)
        assert result.classes_present == ["happy", "neutral"]
        assert {k for k in result.flat_metrics() if k.startswith("recall.")} == {"recall.happy", "recall.neutral"}
        assert 0 <= result.metrics["macro_f1"] <= 1

    def test_leakage_free_figures_leave_out_train_copies(self):
        data = small_data()
        test_rows = np.flatnonzero(data.split_mask("test"))
        data.images[test_rows[:3]] = data.images[0]  # three test images copy a train image
        mask = train_copy_mask(data)
        assert mask.sum() == 3 and mask[test_rows[:3]].all()
        result = evaluate(tiny_model(), data, leakage_mask=mask, bootstrap_resamples=20)
        assert result.leakage_free_images == 25 and "accuracy" in result.leakage_free

    def test_report_files(self, tmp_path):
        result = evaluate(tiny_model(), small_data(), bootstrap_resamples=20)
        paths = write_report(result, tmp_path)
        for key in ("confusion_matrix", "reliability", "reliability_calibrated", "per_class", "markdown", "html"):
            assert paths[key].stat().st_size > 0
        html = paths["html"].read_text()
        # Calibration before and after: the raw and the temperature-scaled reliability diagrams.
        assert html.count("data:image/png;base64") == 3 and "<table>" in html
        assert (
            "after temperature scaling" in html
            and "reliability_diagram_calibrated.png" in paths["markdown"].read_text()
        )
        assert "fear -> surprise" in paths["markdown"].read_text()

    def test_ten_crop_of_a_mirror_symmetric_model_input(self):
        # A symmetric image: flip TTA must equal plain prediction.
        img = face(5)
        img = np.concatenate([img[:, :24], img[:, :24][:, ::-1]], axis=1)[None]
        net = tiny_model().build()
        plain = predict_proba(net, img, tta="none")
        assert np.allclose(predict_proba(net, img, tta="flip"), plain, atol=1e-5)
        assert predict_proba(net, img, tta="ten_crop").shape == (1, 7)
        with pytest.raises(ValueError, match="unknown tta"):
            predict_proba(net, img, tta="twenty_crop")


class CountingNet(torch.nn.Module):
    """Predicts from the mean brightness of each half of the image; counts the forward passes."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(4.0))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        left, right = x[..., :24].mean(dim=(1, 2, 3)), x[..., 24:].mean(dim=(1, 2, 3))
        logits = torch.zeros(len(x), 7)
        logits[:, 0], logits[:, 1] = self.scale * left, self.scale * right
        return logits


class TestTTAModes:
    @pytest.mark.parametrize(
        "mode, views", [("none", 1), ("flip", 2), ("ten_crop", 10), ("multi_scale", 12), ("multi_view", 20)]
    )
    def test_each_mode_looks_at_its_views(self, mode, views):
        net = CountingNet()
        predict_proba(net, np.stack([face(i) for i in range(3)]), tta=mode)
        assert net.calls == views  # one batch

    def test_modes_together_share_views_and_match_each_mode_alone(self):
        images = np.stack([face(i) for i in range(5)])
        net = tiny_model().build()
        counting = CountingNet()
        together = predict_proba_modes(counting, images, TTA_MODES)
        assert counting.calls == 20  # the union of the views, each once
        for mode in TTA_MODES:
            alone = predict_proba(counting, images, tta=mode)
            np.testing.assert_allclose(together[mode], alone, atol=1e-6)
        modes = predict_proba_modes(net, images, ("flip", "ten_crop", "multi_scale", "multi_view"))
        # The groups weigh equally: the whole face (and mirror), the ten crops, the eight shifts.
        np.testing.assert_allclose(modes["multi_scale"], (modes["flip"] + modes["ten_crop"]) / 2, atol=1e-6)
        x = to_input(images)
        with torch.no_grad():
            shifts = (
                sum(
                    net(predict_module._view(x, f"shift_{d}{m}")).softmax(1)
                    for d in ("right", "left", "down", "up")
                    for m in ("", "_mirror")
                ).numpy()
                / 8
            )
        np.testing.assert_allclose(modes["multi_view"], (modes["flip"] + modes["ten_crop"] + shifts) / 3, atol=1e-5)

    def test_shift_views_move_the_face_by_five_percent_of_its_side(self):
        x = torch.zeros(1, 1, 48, 48)
        x[..., 20, 20] = 1.0  # one bright pixel at row 20, column 20

        def centre(view):
            w = view[0, 0]
            rows, cols = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
            return float((w * rows).sum() / w.sum()), float((w * cols).sum() / w.sum())

        assert centre(predict_module._view(x, "shift_right")) == pytest.approx((20, 22.4), abs=0.05)
        assert centre(predict_module._view(x, "shift_up")) == pytest.approx((17.6, 20), abs=0.05)
        assert centre(predict_module._view(x, "shift_left_mirror")) == pytest.approx((20, 47 - 17.6), abs=0.05)
        with pytest.raises(ValueError, match="unknown view"):
            predict_module._view(x, "shift_sideways")
