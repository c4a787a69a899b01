"""Phases freeze what they should, resume reproduces an uninterrupted run, class handling works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.models import build_model
from ferkit.training import Phase, TrainConfig, fit, predict_proba, seed_everything, set_trainable
from ferkit.training.epoch import epoch_order, freeze_frozen_batchnorm
from tests.factories import TINY_HYBRID
from tests.training.test_training import two_class_faces

BASE = dict(
    architecture="hybrid",
    architecture_kwargs=TINY_HYBRID,
    batch_size=16,
    early_stopping_patience=None,
    use_class_weights=False,
    num_threads=2,
    tta_flip=False,
)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before: dict, after: dict) -> set[str]:
    return {
        k for k in before if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k].to(before[k]))
    }


class TestPhases:
    @pytest.mark.parametrize(
        "trainable, moving",
        [
            (["head"], {"head"}),
            (
                ["adapter", "attention", "transformer", "norm", "head"],
                {"adapter", "attention", "transformer", "norm", "head"},
            ),
            (["backbone.layer3", "head"], {"backbone.layer3", "head"}),
        ],
    )
    def test_only_the_phase_parameters_change(self, trainable, moving):
        x, y = two_class_faces(64, seed=0)
        config = TrainConfig(**BASE, phases=[Phase(name="p", epochs=1, lr=1e-2, trainable=trainable)])
        seed_everything(0)
        model = build_model("hybrid", **TINY_HYBRID)
        before = snapshot(model)
        result = fit(model, x, y, x[:16], y[:16], config)
        moved = changed(before, snapshot(model))
        assert moved, "nothing trained"
        for name in moved:  # weights and the running statistics of trainable BatchNorms only
            assert any(name == m or name.startswith(m + ".") for m in moving), name
        for prefix in moving:
            assert any(n.startswith(prefix) for n in moved), f"{prefix} did not train"
        assert result.history[0]["train.trainable_parameters"] < sum(
            p.numel() for p in model.parameters()
        ) or trainable == ["all"]

    def test_frozen_batchnorm_keeps_its_running_statistics(self):
        model = build_model("hybrid", **TINY_HYBRID)
        set_trainable(model, ["head"])
        model.train()
        freeze_frozen_batchnorm(model)
        stem_bn = model.backbone.stem[1]
        assert not stem_bn.training and model.head.training
        before = stem_bn.running_mean.clone()
        model(torch.rand(4, 1, 48, 48))
        torch.testing.assert_close(stem_bn.running_mean, before)

    def test_phases_run_in_order_with_their_own_learning_rates(self):
        x, y = two_class_faces(32, seed=0)
        config = TrainConfig(
            **BASE,
            phases=[
                Phase(name="warm", epochs=2, lr=1e-3, schedule="constant", trainable=["head"]),
                Phase(name="all", epochs=1, lr=5e-4, schedule="constant"),
            ],
        )
        result = fit(build_model("hybrid", **TINY_HYBRID), x, y, x[:8], y[:8], config)
        assert [h["train.phase"] for h in result.history] == [0, 0, 1]
        assert [h["train.lr"] for h in result.history] == pytest.approx([1e-3, 1e-3, 5e-4])
        assert result.history[0]["train.trainable_parameters"] < result.history[2]["train.trainable_parameters"]

    def test_a_trainable_name_that_matches_nothing_is_an_error(self):
        model = build_model("hybrid", **TINY_HYBRID)
        with pytest.raises(ValueError, match=r"phase 'p': trainable 'backbone.layer9' matches no parameter.*adapter"):
            set_trainable(model, ["backbone.layer9"], "p")

    def test_prefixes_stop_at_dots(self):
        model = build_model("plain_cnn", widths=[8, 8, 8, 8])
        params = set_trainable(model, ["features.1"])
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        assert names and all(n.startswith("features.1.") for n in names) and len(params) == len(names)

    def test_tiny_hybrid_learns_a_two_class_task(self):
        x, y = two_class_faces(256, seed=0)
        vx, vy = two_class_faces(128, seed=1)
        config = TrainConfig(**BASE, phases=[Phase(name="all", epochs=4, lr=3e-3, schedule="onecycle")])
        model = build_model("hybrid", **TINY_HYBRID)
        model.load_state_dict(fit(model, x, y, vx, vy, config).state_dict)
        assert (predict_proba(model, vx).argmax(1) == vy).mean() > 0.9


class TestResume:
    def _run(self, checkpoint=None, interrupt_after: int | None = None, ema=None, seen=None, **overrides):
        x, y = two_class_faces(64, seed=0)
        config = TrainConfig(
            **{**BASE, "tta_flip": True, **overrides},
            ema_decay=ema,
            phases=[
                Phase(name="a", epochs=2, lr=3e-3, trainable=["head", "norm", "transformer"]),
                Phase(name="b", epochs=2, lr=1e-3, schedule="onecycle"),
            ],
        )

        def stop(epoch, metrics):
            if seen is not None:
                seen.append(epoch)
            if epoch == interrupt_after:
                raise KeyboardInterrupt

        seed_everything(config.seed)
        model = build_model("hybrid", **TINY_HYBRID)
        weights = [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
        return fit(
            model, x, y, x[:16], y[:16], config, class_weights=weights, callbacks=[stop], checkpoint_path=checkpoint
        ), model

    @pytest.mark.parametrize("interrupt_after", [1, 2, 3])  # mid-phase, at a phase boundary, mid-phase
    def test_resumed_run_ends_like_an_uninterrupted_one(self, tmp_path, interrupt_after):
        reference, _ = self._run()
        checkpoint = tmp_path / "state.pt"
        with pytest.raises(KeyboardInterrupt):
            self._run(checkpoint, interrupt_after=interrupt_after)
        assert checkpoint.is_file()
        resumed, _ = self._run(checkpoint)
        assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
        assert resumed.best_epoch == reference.best_epoch
        for key, value in reference.state_dict.items():
            torch.testing.assert_close(resumed.state_dict[key], value, rtol=0, atol=0)
        loss_tolerance = 1e-4 if torch.cuda.is_available() else 0  # CUDA's reductions run in any order
        for a, b in zip(reference.history, resumed.history):
            assert a["val.macro_f1"] == b["val.macro_f1"]
            assert a["train.loss"] == pytest.approx(b["train.loss"], rel=loss_tolerance, abs=0)

    def test_resume_with_ema(self, tmp_path):
        reference, _ = self._run(ema=0.9)
        with pytest.raises(KeyboardInterrupt):
            self._run(tmp_path / "s.pt", interrupt_after=3, ema=0.9)
        resumed, _ = self._run(tmp_path / "s.pt", ema=0.9)
        for key, value in reference.state_dict.items():
            torch.testing.assert_close(resumed.state_dict[key], value, rtol=0, atol=0)

    @pytest.mark.parametrize("interrupt_after", [1, 2])  # within the small epochs, at the switch to 48 px
    def test_resume_keeps_the_progressive_sizes(self, tmp_path, interrupt_after):
        options = dict(progressive={"size": 32, "epochs": 2})
        reference, _ = self._run(**options)
        assert [h["train.image_size"] for h in reference.history] == [32, 32, 48, 48]
        with pytest.raises(KeyboardInterrupt):
            self._run(tmp_path / "s.pt", interrupt_after=interrupt_after, **options)
        resumed, _ = self._run(tmp_path / "s.pt", **options)
        assert [h["train.image_size"] for h in resumed.history] == [32, 32, 48, 48]
        for key, value in reference.state_dict.items():
            torch.testing.assert_close(resumed.state_dict[key], value, rtol=0, atol=0)

    def test_resume_keeps_the_self_distillation_table(self, tmp_path):
        """The soft targets of the epochs after a resume come from the predictions of those before."""
        options = dict(self_distill={"alpha": 0.8}, class_repeats={"happy": 2})
        reference, _ = self._run(**options)
        assert [h["train.distill_share"] for h in reference.history] == pytest.approx([0, 0.8 / 3, 1.6 / 3, 0.8])
        with pytest.raises(KeyboardInterrupt):
            self._run(tmp_path / "s.pt", interrupt_after=2, **options)
        resumed, _ = self._run(tmp_path / "s.pt", **options)
        for key, value in reference.state_dict.items():
            torch.testing.assert_close(resumed.state_dict[key], value, rtol=0, atol=0)

    def test_resume_with_early_stopping_class_weights_and_repeats(self, tmp_path):
        options = dict(early_stopping_patience=1, use_class_weights=True, class_repeats={"happy": 2})
        reference, _ = self._run(**options)
        with pytest.raises(KeyboardInterrupt):
            self._run(tmp_path / "s.pt", interrupt_after=2, **options)
        resumed, _ = self._run(tmp_path / "s.pt", **options)
        assert [h["epoch"] for h in resumed.history] == [h["epoch"] for h in reference.history]
        for key, value in reference.state_dict.items():
            torch.testing.assert_close(resumed.state_dict[key], value, rtol=0, atol=0)

    def test_a_resumed_run_reports_the_epochs_before_the_interruption(self, tmp_path):
        with pytest.raises(KeyboardInterrupt):
            self._run(tmp_path / "s.pt", interrupt_after=2)
        seen: list[int] = []
        self._run(tmp_path / "s.pt", seen=seen)
        assert seen == [1, 2, 3, 4]  # 1-2 replayed from the saved history, 3-4 trained

    def test_a_finished_state_returns_its_result_without_training(self, tmp_path):
        first, _ = self._run(tmp_path / "s.pt")
        again, model = self._run(tmp_path / "s.pt")
        assert again.best_epoch == first.best_epoch and len(again.history) == 4
        for key, value in first.state_dict.items():
            torch.testing.assert_close(again.state_dict[key], value, rtol=0, atol=0)

    def test_the_ema_copies_integer_buffers_instead_of_averaging_them(self):
        from ferkit.models.ema import ema_update

        model = build_model("hybrid", **TINY_HYBRID)
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_update(0.9), use_buffers=True)
        order = model.head.order.clone()
        model.train()
        for _ in range(30):
            model(torch.rand(4, 1, 48, 48))
            ema.update_parameters(model)
        assert torch.equal(ema.module.head.order, order)
        stem_bn = ema.module.backbone.stem[1]
        assert int(stem_bn.num_batches_tracked) == int(model.backbone.stem[1].num_batches_tracked) == 30
        assert not torch.equal(stem_bn.running_mean, model.backbone.stem[1].running_mean)  # floats averaged

    def test_the_ema_warms_up(self):
        from ferkit.models.ema import ema_update

        average, current = [torch.zeros(3)], [torch.ones(3)]
        update = ema_update(0.999)
        update(average, current, torch.tensor(1))  # second update: decay (1 + 1) / (10 + 1)
        torch.testing.assert_close(average[0], torch.full((3,), 9 / 11))
        average = [torch.zeros(3)]
        update(average, current, torch.tensor(100_000))  # late: the configured decay
        torch.testing.assert_close(average[0], torch.full((3,), 0.001))

    def test_a_checkpoint_of_another_config_is_refused(self, tmp_path):
        with pytest.raises(KeyboardInterrupt):
            self._run(tmp_path / "s.pt", interrupt_after=1)
        x, y = two_class_faces(16, seed=0)
        other = TrainConfig(**BASE, epochs=1)
        with pytest.raises(ValueError, match="s.pt: resume checkpoint belongs to another training config"):
            fit(build_model("hybrid", **TINY_HYBRID), x, y, x, y, other, checkpoint_path=tmp_path / "s.pt")


class TestClassHandling:
    def test_class_weights_pull_predictions_toward_the_heavy_class(self):
        rng = np.random.default_rng(0)
        x = rng.integers(0, 255, size=(256, 48, 48)).astype(np.uint8)  # labels carry no signal
        y = rng.integers(0, 7, size=256)
        shares = []
        for weights in (None, [1.0, 1.0, 1.0, 20.0, 1.0, 1.0, 1.0]):
            config = TrainConfig(**{**BASE, "use_class_weights": True}, epochs=2, optimizer="adamw", lr=3e-3)
            seed_everything(0)
            model = build_model("hybrid", **TINY_HYBRID)
            model.load_state_dict(fit(model, x, y, x[:64], y[:64], config, class_weights=weights).state_dict)
            shares.append((predict_proba(model, x).argmax(1) == 3).mean())
        assert shares[1] > 0.8 > shares[0]

    def test_repeated_classes_appear_that_many_times_per_epoch(self):
        labels = np.array([0, 1, 1, 2])
        repeats = np.array([1, 1, 3, 1, 1, 1, 1])
        order = epoch_order(labels, repeats, torch.Generator().manual_seed(0))
        assert sorted(order.tolist()) == [0, 1, 2, 3, 3, 3]

    def test_unknown_emotion_in_class_repeats_is_named(self):
        with pytest.raises(ValueError, match="class_repeats: unknown emotion 'disgusted'"):
            TrainConfig(class_repeats={"disgusted": 3})
