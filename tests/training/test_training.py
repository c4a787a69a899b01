"""The training loop learns, weighs classes, stays seeded, and augmentation keeps shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferkit.data.augment import AugmentConfig, MixConfig, augment_batch, mix_batch
from ferkit.models import build_model
from ferkit.models.predict import to_input
from ferkit.training import TrainConfig, fit, predict_proba, seed_everything
from ferkit.training.config import AugmentSettings, Phase
from ferkit.training.epoch import distilled_targets
from ferkit.training.loop import ended_by
from tests.factories import TINY_HYBRID


def two_class_faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: bright upper half; class 3: bright lower half, over noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(n, 48, 48)).astype(np.uint8)
    labels = np.where(np.arange(n) % 2 == 0, 0, 3)
    images[labels == 0, :24] += 150
    images[labels == 3, 24:] += 150
    return images, labels


SMALL = dict(
    architecture="plain_cnn",
    architecture_kwargs={"widths": [8, 16, 16, 32]},
    batch_size=32,
    lr=0.05,
    early_stopping_patience=None,
    tta_flip=True,
    use_class_weights=False,
    num_threads=2,
)


class TestFit:
    def test_tiny_model_learns_a_two_class_task(self):
        x, y = two_class_faces(256, seed=0)
        vx, vy = two_class_faces(128, seed=1)
        config = TrainConfig(epochs=4, **SMALL)
        model = build_model(config.architecture, **config.architecture_kwargs)
        result = fit(model, x, y, vx, vy, config)
        model.load_state_dict(result.state_dict)
        accuracy = (predict_proba(model, vx).argmax(1) == vy).mean()
        assert accuracy > 0.9
        assert len(result.history) == 4 and 1 <= result.best_epoch <= 4
        assert result.epochs_trained == 4 and result.ended_by == "all epochs"
        assert {"train.loss", "val.macro_f1", "val.log_loss", "train.lr"} <= set(result.history[0])

    def test_bf16_channels_last_on_the_cpu_learns_too(self):
        """The cpu config's speed settings: bf16 autocast and channels_last, on whatever CPU this is."""
        x, y = two_class_faces(256, seed=0)
        vx, vy = two_class_faces(128, seed=1)
        config = TrainConfig(epochs=4, precision="bf16", channels_last=True, **SMALL)
        model = build_model(config.architecture, **config.architecture_kwargs)
        result = fit(model, x, y, vx, vy, config)
        model.load_state_dict(result.state_dict)
        assert np.isfinite(result.history[-1]["train.loss"])
        assert (predict_proba(model, vx, bf16=True).argmax(1) == vy).mean() > 0.9

    def test_same_seed_same_weights(self):
        x, y = two_class_faces(64, seed=0)
        config = TrainConfig(epochs=1, **SMALL)
        states = []
        for _ in range(2):
            seed_everything(config.seed)  # initial weights too
            model = build_model(config.architecture, **config.architecture_kwargs)
            states.append(fit(model, x, y, x[:16], y[:16], config).state_dict)
        for key in states[0]:
            torch.testing.assert_close(states[0][key], states[1][key])

    def test_callbacks_see_every_epoch(self):
        x, y = two_class_faces(64, seed=0)
        seen = []
        config = TrainConfig(epochs=2, **SMALL)
        fit(
            build_model("plain_cnn", widths=[8, 8, 8, 8]),
            x,
            y,
            x[:16],
            y[:16],
            config,
            callbacks=[lambda epoch, metrics: seen.append((epoch, metrics["val.accuracy"]))],
        )
        assert [epoch for epoch, _ in seen] == [1, 2]

    def test_validate_every_scores_every_nth_epoch_and_the_last(self, tmp_path):
        from ferkit.metrics.curves import training_curves_png

        x, y = two_class_faces(64, seed=0)
        config = TrainConfig(epochs=5, validate_every=2, **SMALL)
        result = fit(build_model("plain_cnn", widths=[8, 8, 8, 8]), x, y, x[:16], y[:16], config)
        scored = [h["epoch"] for h in result.history if "val.macro_f1" in h]
        assert scored == [2, 4, 5]  # every second epoch, and the last one whatever its number
        assert result.best_epoch in scored
        assert all("train.loss" in h for h in result.history)
        assert training_curves_png(result.history, tmp_path / "curves.png").stat().st_size > 0

    def test_early_stopping_counts_validations_not_epochs(self):
        x, y = two_class_faces(64, seed=0)
        config = TrainConfig(epochs=20, **{**SMALL, "early_stopping_patience": 1, "lr": 1e-9, "validate_every": 3})
        result = fit(build_model("plain_cnn", widths=[8, 8, 8, 8]), x, y, x[:16], y[:16], config)
        # The first validation (epoch 3) sets the best; the next (epoch 6) cannot beat it at lr 1e-9.
        assert len(result.history) == 6
        assert result.epochs_trained == 6 and result.ended_by == "early stopping"

    def test_early_stopping_stops(self):
        x, y = two_class_faces(64, seed=0)
        config = TrainConfig(epochs=20, **{**SMALL, "early_stopping_patience": 1, "lr": 1e-9})
        result = fit(build_model("plain_cnn", widths=[8, 8, 8, 8]), x, y, x[:16], y[:16], config)
        assert len(result.history) < 20

    def test_how_a_training_of_phases_ended(self):
        """Early stopping in an earlier phase hands over to the next: only the last phase's says why the
        training ended; the time budget's flag on the last epoch wins over both."""
        phases = [Phase(name="head", epochs=4, lr=1e-3), Phase(name="all", epochs=3, lr=1e-4)]

        def history(*phase_of_each_epoch: int) -> list[dict[str, float]]:
            return [{"epoch": i + 1, "train.phase": float(p)} for i, p in enumerate(phase_of_each_epoch)]

        assert ended_by(history(0, 0, 0, 0, 1, 1, 1), phases) == "all epochs"
        assert ended_by(history(0, 0, 1, 1, 1), phases) == "all epochs"  # the head phase stopped early
        assert ended_by(history(0, 0, 0, 0, 1, 1), phases) == "early stopping"
        budget = history(0, 0, 0, 0, 1)
        budget[-1]["train.stopped_by_time_budget"] = 1.0
        assert ended_by(budget, phases) == "time budget"

    def test_empty_validation_split_is_refused(self):
        x, y = two_class_faces(8, seed=0)
        with pytest.raises(ValueError, match="validation split is empty"):
            fit(build_model("plain_cnn"), x, y, x[:0], y[:0], TrainConfig(epochs=1))

    def test_class_weights_change_the_loss(self):
        logits = torch.randn(8, 7)
        labels = torch.tensor([0, 1, 1, 2, 3, 4, 5, 6])
        weights = torch.ones(7)
        plain = F.cross_entropy(logits, labels, weight=weights)
        weights[1] = 5.0
        weighted = F.cross_entropy(logits, labels, weight=weights)
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        expected = (per_sample * weights[labels]).sum() / weights[labels].sum()
        torch.testing.assert_close(weighted, expected)
        assert not torch.isclose(plain, weighted)


class TestAugment:
    def test_shape_range_and_randomness(self):
        x = to_input(two_class_faces(16, seed=0)[0])
        out = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        assert not torch.allclose(out, x)

    def test_zero_strength_without_flip_or_brightness_is_identity(self):
        x = to_input(two_class_faces(4, seed=0)[0])
        config = AugmentConfig(strength=0.0, hflip=False, brightness=(1.0, 1.0))
        torch.testing.assert_close(augment_batch(x, config), x, atol=1e-5, rtol=0)

    def test_erasing_replaces_one_rectangle_in_the_chosen_share(self):
        x = torch.zeros(400, 1, 48, 48)  # black faces: erased pixels are the only non-zero ones
        config = AugmentConfig(strength=0.0, hflip=False, brightness=(1.0, 1.0), erase=0.5, erase_area=(0.05, 0.1))
        out = augment_batch(x, config, torch.Generator().manual_seed(0))
        touched = out.flatten(1) > 0
        erased = touched.any(1)
        assert 0.4 < erased.float().mean() < 0.6
        share = touched[erased].float().mean(1)
        assert share.min() > 0.02 and share.max() < 0.13  # clamped rectangles, noise rarely exactly 0
        rows = (out[erased] > 0).any(dim=3).squeeze(1)  # (n, H): rows touched are one contiguous run
        for r in rows:
            idx = r.nonzero().flatten()
            assert idx.max() - idx.min() + 1 <= 48 and r[idx.min() : idx.max() + 1].float().mean() > 0.9

    def test_erase_area_out_of_range_is_refused(self):
        with pytest.raises(ValueError, match="erase_area"):
            AugmentSettings(erase=0.5, erase_area=(0.3, 0.1))

    def test_flip_only_mirrors(self):
        x = to_input(two_class_faces(64, seed=0)[0])
        config = AugmentConfig(strength=0.0, hflip=True, brightness=(1.0, 1.0))
        out = augment_batch(x, config, torch.Generator().manual_seed(1))
        mirrored = torch.isclose(out, x.flip(dims=[3]), atol=1e-5).flatten(1).all(1)
        same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
        assert (mirrored | same).all() and mirrored.any() and same.any()


class TestMix:
    def test_mixup_blends_each_face_with_its_partner_by_the_share(self):
        x = to_input(two_class_faces(32, seed=0)[0])
        mixed, partner, share = mix_batch(x, MixConfig("mixup", alpha=0.4), torch.Generator().manual_seed(0))
        assert 0 < share < 1 and sorted(partner.tolist()) == list(range(32))
        torch.testing.assert_close(mixed, share * x + (1 - share) * x[partner])

    def test_cutmix_pastes_one_box_and_the_share_is_what_is_left(self):
        x = torch.zeros(16, 1, 48, 48)
        x[:, :, :, :] = torch.arange(16, dtype=torch.float32).view(16, 1, 1, 1) / 16  # one grey per face
        for seed in range(20):
            mixed, partner, share = mix_batch(x, MixConfig("cutmix"), torch.Generator().manual_seed(seed))
            pasted = ~torch.isclose(mixed, x).flatten(1)  # (B, H*W): pixels now from the partner
            moved = partner != torch.arange(16)
            assert pasted[~moved].sum() == 0  # a face paired with itself is unchanged
            if moved.any():
                assert pasted[moved].float().mean(1).allclose(torch.tensor(1 - share))
                box = pasted[moved][0].view(48, 48)
                rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
                if len(rows):  # one rectangle: every pixel between its extremes is pasted
                    assert box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
            torch.testing.assert_close(mixed[moved], torch.where(pasted[moved].view(-1, 1, 48, 48),
                                       x[partner][moved], x[moved]))  # fmt: skip

    def test_an_unmixed_batch_comes_back_whole_and_the_draws_stay_in_step(self):
        x = to_input(two_class_faces(8, seed=0)[0])
        never, always = MixConfig("mixup", probability=1e-9), MixConfig("mixup", probability=1.0)
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        out, _, share = mix_batch(x, never, g1)
        assert share == 1.0 and torch.equal(out, x)
        mix_batch(x, always, g2)
        assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))

    def test_an_unknown_mode_is_refused(self):
        with pytest.raises(ValueError, match="mix mode 'blend'"):
            mix_batch(torch.zeros(2, 1, 48, 48), MixConfig("blend"))
        with pytest.raises(ValueError, match="mode"):
            TrainConfig(mix={"mode": "blend"})

    def test_a_recipe_without_mixing_keeps_its_fingerprint(self):
        plain = TrainConfig(epochs=1, **SMALL)
        assert "mix" not in plain.recipe()
        mixed = TrainConfig(epochs=1, mix={"mode": "cutmix"}, **SMALL)
        assert mixed.recipe()["mix"] == {"mode": "cutmix", "alpha": 1.0, "probability": 1.0}
        assert mixed.fingerprint() != plain.fingerprint()
        assert TrainConfig(**mixed.recipe()).fingerprint() == mixed.fingerprint()

    @pytest.mark.parametrize("mode", ["mixup", "cutmix"])
    def test_a_model_trained_with_mixing_learns(self, mode):
        x, y = two_class_faces(256, seed=0)
        vx, vy = two_class_faces(128, seed=1)
        config = TrainConfig(epochs=4, mix={"mode": mode, "alpha": 0.4}, **{**SMALL, "use_class_weights": True})
        model = build_model(config.architecture, **config.architecture_kwargs)
        weights = [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
        result = fit(model, x, y, vx, vy, config, class_weights=weights)
        model.load_state_dict(result.state_dict)
        assert np.isfinite(result.history[-1]["train.loss"])
        assert (predict_proba(model, vx).argmax(1) == vy).mean() > 0.9


class TestSelfDistill:
    def test_the_share_rises_from_nothing_at_the_first_epoch_to_alpha_at_the_last(self):
        config = TrainConfig(epochs=5, self_distill={"alpha": 0.6}, **SMALL)
        assert [config.distill_share(e) for e in range(5)] == pytest.approx([0, 0.15, 0.3, 0.45, 0.6])
        assert TrainConfig(epochs=5, **SMALL).distill_share(4) == 0
        with pytest.raises(ValueError, match="alpha"):
            TrainConfig(self_distill={"alpha": 1.5})

    def test_a_target_blends_the_label_with_the_past_prediction(self):
        y = torch.tensor([0, 3])
        past = torch.tensor([[0.1, 0, 0, 0.9, 0, 0, 0], [0, 0, 0, 1.0, 0, 0, 0]])
        targets = distilled_targets(y, past, share=0.5, smoothing=0.0)
        torch.testing.assert_close(targets[0], torch.tensor([0.55, 0, 0, 0.45, 0, 0, 0]))
        torch.testing.assert_close(targets[1], F.one_hot(torch.tensor(3), 7).float())
        smoothed = distilled_targets(y, past, share=0.0, smoothing=0.07)
        torch.testing.assert_close(smoothed[0], torch.tensor([0.94, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]))
        torch.testing.assert_close(distilled_targets(y, past, 0.3, 0.1).sum(1), torch.ones(2))

    def test_the_first_epoch_trains_on_the_labels_and_later_ones_on_the_blend(self):
        x, y = two_class_faces(128, seed=0)
        weights = [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
        runs = []
        for distill in (None, {"alpha": 0.8}):
            config = TrainConfig(epochs=3, self_distill=distill, **{**SMALL, "use_class_weights": True})
            seed_everything(0)
            model = build_model(config.architecture, **config.architecture_kwargs)
            runs.append(fit(model, x, y, x[:32], y[:32], config, class_weights=weights).history)
        plain, distilled = runs
        assert distilled[0]["train.loss"] == pytest.approx(plain[0]["train.loss"], rel=1e-5)
        assert distilled[2]["train.loss"] != pytest.approx(plain[2]["train.loss"], rel=1e-3)

    def test_the_table_holds_each_trained_face_s_last_prediction_and_the_rest_their_labels(self, tmp_path):
        x, y = two_class_faces(256, seed=0)
        config = TrainConfig(epochs=2, self_distill={"alpha": 0.8}, max_batches_per_epoch=2, **SMALL)
        seed_everything(0)
        model = build_model(config.architecture, **config.architecture_kwargs)
        fit(model, x, y, x[:32], y[:32], config, checkpoint_path=tmp_path / "state.pt")
        past = torch.load(tmp_path / "state.pt", weights_only=True)["past"]  # (256, 7)
        labels = F.one_hot(torch.as_tensor(y), 7).float()
        untouched = (past == labels).all(1)
        assert 64 <= int((~untouched).sum()) <= 128  # 2 epochs of 2 batches of 32; some faces in both
        torch.testing.assert_close(past.sum(1), torch.ones(256))
        assert (past[~untouched] > 0).all()  # a softmax, not a label

    def test_a_model_trained_with_self_distillation_learns(self):
        x, y = two_class_faces(256, seed=0)
        vx, vy = two_class_faces(128, seed=1)
        config = TrainConfig(epochs=4, self_distill={"alpha": 0.8}, **SMALL)
        model = build_model(config.architecture, **config.architecture_kwargs)
        model.load_state_dict(fit(model, x, y, vx, vy, config).state_dict)
        assert (predict_proba(model, vx).argmax(1) == vy).mean() > 0.9

    def test_a_recipe_without_it_keeps_its_fingerprint(self):
        plain = TrainConfig(epochs=1, **SMALL)
        assert "self_distill" not in plain.recipe()
        distilled = TrainConfig(epochs=1, self_distill={}, **SMALL)
        assert distilled.recipe()["self_distill"] == {"alpha": 0.8}
        assert distilled.fingerprint() != plain.fingerprint()


class TestProgressive:
    def test_the_early_epochs_train_small_faces_and_validation_stays_native(self):
        x, y = two_class_faces(64, seed=0)
        config = TrainConfig(
            epochs=3,
            progressive={"size": 32, "epochs": 2},
            **{**SMALL, "architecture": "hybrid", "architecture_kwargs": TINY_HYBRID},
        )
        model = build_model(config.architecture, **config.architecture_kwargs)
        sides: list[tuple[bool, int]] = []
        model.register_forward_pre_hook(lambda module, args: sides.append((module.training, args[0].shape[-1])))
        result = fit(model, x, y, x[:16], y[:16], config)
        trained = [side for training, side in sides if training]
        per_epoch = len(trained) // 3
        assert trained == [32] * 2 * per_epoch + [48] * per_epoch
        assert {side for training, side in sides if not training} == {48}
        assert [h["train.image_size"] for h in result.history] == [32, 32, 48]

    def test_a_model_trained_with_progressive_resizing_learns(self):
        x, y = two_class_faces(256, seed=0)
        vx, vy = two_class_faces(128, seed=1)
        config = TrainConfig(epochs=4, progressive={"size": 24, "epochs": 3}, **SMALL)
        model = build_model(config.architecture, **config.architecture_kwargs)
        model.load_state_dict(fit(model, x, y, vx, vy, config).state_dict)
        assert (predict_proba(model, vx).argmax(1) == vy).mean() > 0.9

    def test_the_schedule_counts_epochs_over_all_phases(self):
        phases = [{"name": "a", "epochs": 2, "lr": 1e-3}, {"name": "b", "epochs": 3, "lr": 1e-3}]
        config = TrainConfig(phases=phases, progressive={"size": 36, "epochs": 3})
        assert [config.train_size(epoch) for epoch in range(5)] == [36, 36, 36, None, None]
        assert TrainConfig(phases=phases).train_size(0) is None

    @pytest.mark.parametrize(
        "progressive, message",
        [
            ({"size": 36, "epochs": 4}, "progressive.epochs is 4 of 4 epochs in all"),
            ({"size": 48, "epochs": 1}, "less than 48"),
            ({"size": 8, "epochs": 1}, "greater than or equal to 16"),
            ({"size": 36, "epochs": 1, "sizes": [32]}, "sizes"),
        ],
    )
    def test_a_schedule_without_native_epochs_or_with_odd_sizes_is_refused(self, progressive, message):
        with pytest.raises(ValueError, match=message):
            TrainConfig(epochs=4, progressive=progressive)

    def test_a_recipe_without_progressive_resizing_keeps_its_fingerprint(self):
        plain = TrainConfig(epochs=2, **SMALL)
        assert "progressive" not in plain.recipe()
        resized = TrainConfig(epochs=2, progressive={"size": 32, "epochs": 1}, **SMALL)
        assert resized.recipe()["progressive"] == {"size": 32, "epochs": 1}
        assert resized.fingerprint() != plain.fingerprint()
        assert TrainConfig(**resized.recipe()).fingerprint() == resized.fingerprint()


class TestPrecision:
    """`precision: auto` trains in bf16 only where it is faster: with AMX (2.65x fp32) or on an AMD
    CPU with AVX512-BF16 (Zen 4: 1.64x), not on an Intel one with AVX512-BF16 alone (0.71x) nor
    where bf16 is emulated (9x slower)."""

    @pytest.mark.parametrize(
        ("vendor", "flags", "expected"),
        [
            ("GenuineIntel", {"avx2", "fma"}, "fp32"),
            ("GenuineIntel", {"avx2", "avx512f", "avx512bw"}, "fp32"),
            ("GenuineIntel", {"avx512f", "avx512_bf16", "avx512_vnni"}, "fp32"),
            ("GenuineIntel", {"avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}, "bf16"),
            ("AuthenticAMD", {"avx2", "fma"}, "fp32"),
            ("AuthenticAMD", {"avx2", "avx512f", "avx512bw"}, "fp32"),
            ("AuthenticAMD", {"avx512f", "avx512_bf16", "avx512_vnni"}, "bf16"),
            ("", {"avx512f", "avx512_bf16"}, "fp32"),
        ],
    )
    def test_auto_picks_bf16_only_where_the_cpu_runs_it_faster(self, monkeypatch, vendor, flags, expected):
        from ferkit import runtime

        monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(runtime, "cpu_vendor", lambda: vendor)
        config = TrainConfig(precision="auto", device="cpu")
        assert config.concrete_precision == expected
        assert config.recipe()["precision"] == expected
        # The fingerprint is that of the resolved config: same weights, same resume state.
        assert config.fingerprint() == TrainConfig(precision=expected, device="cpu").fingerprint()

    @pytest.mark.parametrize(
        ("capability", "expected"), [((7, 0), "fp32"), ((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")]
    )
    def test_auto_picks_bf16_only_on_gpus_of_capability_8_and_later(self, monkeypatch, capability, expected):
        """V100 and T4 (7.x) emulate bf16; A100 (8.0) and H100 (9.0) have it."""
        from ferkit.runtime import resolve_precision

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        assert resolve_precision("auto", torch.device("cuda")) == expected

    def test_the_cpu_flags_are_read_from_this_machine(self):
        from ferkit.runtime import cpu_flags

        flags = cpu_flags()
        assert not flags or "sse2" in flags  # x86-64 always has SSE2; other systems report none

    def test_the_flags_and_vendor_are_the_first_processors_and_not_its_vmx_flags(self, monkeypatch, tmp_path):
        import builtins

        from ferkit.runtime import cpu_flags, cpu_vendor

        info = tmp_path / "cpuinfo"
        info.write_text(
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx512_bf16\n"
            "vmx flags\t: vnmi ept\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nflags\t\t: fpu amx_bf16\n"
        )
        real_open = builtins.open
        monkeypatch.setattr(
            builtins, "open", lambda f, *a, **k: real_open(info if f == "/proc/cpuinfo" else f, *a, **k)
        )
        assert cpu_flags() == frozenset({"fpu", "sse2", "avx512_bf16"})
        assert cpu_vendor() == "AuthenticAMD"
        monkeypatch.setattr(builtins, "open", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("no cpuinfo")))
        assert cpu_flags() == frozenset() and cpu_vendor() == ""

    def test_the_cpu_model_names_the_first_processor_with_its_numbers(self, monkeypatch, tmp_path):
        import builtins

        from ferkit.runtime import cpu_model

        info = tmp_path / "cpuinfo"
        info.write_text(
            "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 207\nmodel name\t: Intel(R) Xeon(R) Processor\n\n"
            "processor\t: 1\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Other\n"
        )
        real_open = builtins.open
        monkeypatch.setattr(
            builtins, "open", lambda f, *a, **k: real_open(info if f == "/proc/cpuinfo" else f, *a, **k)
        )
        assert cpu_model() == "Intel(R) Xeon(R) Processor (family 6, model 207)"

    def test_a_trained_model_records_the_precision_it_used(self, monkeypatch):
        from ferkit import runtime
        from ferkit.data.dataset import FERDataset
        from ferkit.data.labels import SPLITS
        from ferkit.training.train import train

        monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
        x, y = two_class_faces(64, seed=0)
        vx, vy = two_class_faces(32, seed=1)
        data = FERDataset(
            images=np.concatenate([x, vx]),
            labels=np.concatenate([y, vy]),
            splits=np.array([SPLITS.index("train")] * len(x) + [SPLITS.index("val")] * len(vx), dtype=np.uint8),
            source_ids=np.array([f"face{i}" for i in range(len(x) + len(vx))]),
        )
        config = TrainConfig(epochs=1, precision="auto", device="cpu", **SMALL)
        assert train(config, data).model.recipe["precision"] == "fp32"

    def test_an_unknown_precision_is_refused(self):
        from ferkit.runtime import resolve_precision

        with pytest.raises(ValueError, match="precision must be one of"):
            resolve_precision("fp16", "cpu")
        with pytest.raises(ValueError, match="precision"):
            TrainConfig(precision="fp16")
