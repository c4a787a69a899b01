"""GAN oversampling: targets and their errors, synthetic rows only in train, the quality scores."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS, SPLITS
from ferkit.gan.oversample import (
    OversampleConfig,
    OversampleError,
    TrainedGenerator,
    add_synthetic,
    oversample,
    parse_target,
    plan_synthetic,
)
from ferkit.gan.quality import (
    QualityConfig,
    assess,
    frechet_distance,
    kernel_distance,
    markdown,
    metrics,
    nearest_distances,
    write_plots,
)
from tests.factories import face

TINY_GAN = {"z_dim": 8, "width": 4, "batch_size": 8, "steps": 6, "log_every": 3, "num_threads": 2}
TINY_QUALITY = {
    "judge_epochs": 1,
    "judge_widths": [4, 8],
    "samples_per_class": 8,
    "kid_subsets": 2,
    "kid_subset_size": 4,
}


def dataset(per_split: dict[str, dict[str, int]]) -> FERDataset:
    """Distinct generated faces: split -> emotion -> count."""
    images, labels, splits, ids = [], [], [], []
    seed = 0
    for split, counts in per_split.items():
        for emotion, n in counts.items():
            for _ in range(n):
                seed += 1
                images.append(face(seed))
                labels.append(EMOTIONS.index(emotion))
                splits.append(SPLITS.index(split))
                ids.append(f"{split}/{emotion}/{seed}.png")
    return FERDataset(np.stack(images), np.array(labels), np.array(splits), np.array(ids))


@pytest.fixture(scope="module")
def data() -> FERDataset:
    every = dict.fromkeys(EMOTIONS, 6)
    return dataset({"train": {**every, "disgust": 4, "happy": 12}, "val": every, "test": every})


class TestTargets:
    @pytest.mark.parametrize(
        ("target", "real", "total"),
        [("3x", 436, 1308), ("1.5x", 10, 15), (" 2 x ", 7, 14), (1500, 436, 1500), ("1x", 5, 5)],
    )
    def test_factor_or_count(self, target, real, total):
        assert parse_target("disgust", target, real) == total

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("3y", "neither a count nor a factor"),
            ("x3", "neither a count nor a factor"),
            ("0.5x", "below 1x"),
            (0, "must be positive"),
            (True, "neither a count nor a factor"),
        ],
    )
    def test_bad_targets_name_the_emotion(self, target, message):
        with pytest.raises(OversampleError, match=rf"oversample\.targets\.disgust: .*{message}"):
            parse_target("disgust", target, 10)

    def test_unknown_emotion_is_named(self):
        with pytest.raises(ValueError, match="unknown emotion 'disgusted'"):
            OversampleConfig(targets={"disgusted": "3x"})

    def test_bad_target_in_config_is_caught_before_any_training(self):
        with pytest.raises(ValueError, match=r"oversample\.targets\.fear: '3 times'"):
            OversampleConfig(targets={"fear": "3 times"})

    def test_plan_counts_what_to_add(self):
        counts = {"disgust": 436, "fear": 4097}
        plan = plan_synthetic(counts, OversampleConfig(targets={"disgust": "3x", "fear": 4000}))
        assert plan == {"disgust": 872, "fear": 0}  # fear already has more than its target

    def test_too_few_images_names_class_and_count(self):
        config = OversampleConfig(targets={"disgust": "3x"}, min_images_per_class=50)
        with pytest.raises(
            OversampleError, match="class 'disgust' has 12 real training images.*min_images_per_class=50"
        ):
            plan_synthetic({"disgust": 12}, config)


class TestOversample:
    def config(self, **kw) -> OversampleConfig:
        return OversampleConfig(
            **{"enabled": True, "targets": {"disgust": "3x"}, "min_images_per_class": 2, "gan": TINY_GAN, **kw}
        )

    def test_disabled_passes_the_data_through(self, data):
        out, generator, plan = oversample(data, OversampleConfig(enabled=False), progress=False)
        assert out is data and generator is None and plan == {}

    def test_synthetic_faces_join_train_only(self, data):
        out, generator, plan = oversample(data, self.config(), progress=False)
        assert plan == {"disgust": 8} and isinstance(generator, TrainedGenerator)
        new = out.synthetic
        assert new.sum() == 8 and len(out) == len(data) + 8
        assert set(out.splits[new]) == {SPLITS.index("train")}
        assert set(out.labels[new]) == {EMOTIONS.index("disgust")}
        assert list(out.source_ids[new][:2]) == ["synthetic/disgust/000000", "synthetic/disgust/000001"]
        for split in ("val", "test"):  # untouched, face for face
            assert not out.split(split).synthetic.any()
            np.testing.assert_array_equal(out.split(split).images, data.split(split).images)
        assert out.class_counts("train")["disgust"] == 12  # 4 real, 3x
        np.testing.assert_array_equal(out.images[: len(data)], data.images)

    def test_seeded_runs_are_reproducible(self, data):
        cpu = self.config().gan.model_copy(update={"device": "cpu"})  # bit for bit on the CPU; CUDA's kernels are not
        a, _, _ = oversample(data, self.config(gan=cpu), progress=False)
        b, _, _ = oversample(data, self.config(gan=cpu), progress=False)
        c, _, _ = oversample(data, self.config(seed=1, gan=cpu), progress=False)
        assert a.fingerprint == b.fingerprint
        assert a.fingerprint != c.fingerprint  # another sampling seed, other faces

    def test_earlier_synthetic_faces_are_not_counted_or_learned(self, data):
        once, _, _ = oversample(data, self.config(), progress=False)
        twice, _, plan = oversample(once, self.config(), progress=False)
        assert plan == {"disgust": 8}  # the target counts real faces only
        assert twice.synthetic.sum() == 16

    def test_a_target_already_met_trains_nothing(self, data):
        config = OversampleConfig(enabled=True, targets={"happy": 10}, min_images_per_class=2, gan=TINY_GAN)
        out, generator, plan = oversample(data, config, progress=False)
        assert plan == {"happy": 0} and generator is None and out is data

    def test_synthetic_rows_cannot_be_placed_in_val(self, data):
        bad = add_synthetic(data, data.images[:1], data.labels[:1])
        bad.splits[-1] = SPLITS.index("val")
        with pytest.raises(ValueError, match="synthetic images may only belong to the train split"):
            FERDataset(bad.images, bad.labels, bad.splits, bad.source_ids, bad.synthetic)

    def test_generator_round_trips_through_a_file(self, data, tmp_path):
        _, generator, _ = oversample(data, self.config(), progress=False)
        generator.save(tmp_path / "g.pt")
        loaded = TrainedGenerator.load(tmp_path / "g.pt")
        from ferkit.gan import generate

        labels = np.array([1, 1, 3])
        np.testing.assert_array_equal(
            generate(loaded.build(), labels, seed=4), generate(generator.build(), labels, seed=4)
        )
        assert loaded.config == generator.config and loaded.history == generator.history

    def test_loading_a_foreign_file_fails_clearly(self, tmp_path):
        import torch

        torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
        with pytest.raises(ValueError, match="other.pt: not a ferkit generator checkpoint"):
            TrainedGenerator.load(tmp_path / "other.pt")


class TestQuality:
    def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_shift(self):
        rng = np.random.default_rng(0)
        a = rng.normal(size=(500, 8))
        assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
        near, far = (frechet_distance(a, rng.normal(size=(500, 8))), frechet_distance(a, rng.normal(size=(500, 8)) + 2))
        assert near < 0.5 and far > 30  # a shift of 2 in 8 dimensions: |mu|^2 = 32

    def test_kernel_distance_separates_distributions(self):
        rng = np.random.default_rng(1)
        a, b, c = (rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 1)
        same, shifted = (
            kernel_distance(a, b, subsets=10, subset_size=100),
            kernel_distance(a, c, subsets=10, subset_size=100),
        )
        assert abs(same) < 0.1 < shifted

    def test_nearest_distances_find_exact_copies(self):
        reference = np.stack([face(s) for s in range(20)])
        queries = np.stack([reference[7], reference[3], face(99)])
        dist, where = nearest_distances(queries, reference, chunk=2)
        assert (
            list(where[:2]) == [7, 3]
            and dist[0] == pytest.approx(0, abs=1e-3)
            and dist[1] == pytest.approx(0, abs=1e-3)
        )
        assert dist[2] > 0.05

    def test_assess_scores_each_asked_emotion_and_draws_plots(self, data, tmp_path):
        _, generator, _ = oversample(
            data,
            OversampleConfig(enabled=True, targets={"disgust": "3x"}, min_images_per_class=2, gan=TINY_GAN),
            progress=False,
        )
        result = assess(generator, data, QualityConfig(**TINY_QUALITY), emotions=("disgust", "happy"))
        rows = result.report["classes"]
        assert set(rows) == {"disgust", "happy"}
        for row in rows.values():
            assert 0 <= row["agreement"] <= 1 and 0 <= row["copy_share"] <= 1
            assert row["fid"] >= 0 and row["nn_distance_median"] > 0
            assert {"fid_real_reference", "kid", "kid_real_reference", "agreement_real_reference"} <= set(row)
        assert "Inception weights cannot be downloaded" in result.report["feature_extractor"]
        assert "agreement.disgust" in metrics(result.report) and "| disgust |" in markdown(result.report)
        paths = write_plots(result, tmp_path)
        names = {p.relative_to(tmp_path).as_posix() for p in paths}
        assert names == {
            "nn_distance.png",
            "samples/disgust.png",
            "samples/happy.png",
            "nearest/disgust.png",
            "nearest/happy.png",
        }
        assert all(p.stat().st_size > 500 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)

    def test_a_memorised_copy_is_counted(self, data, monkeypatch):
        """A 'generator' that returns real training faces: every sample is a copy."""
        from ferkit.gan import quality

        _, generator, _ = oversample(
            data,
            OversampleConfig(enabled=True, targets={"disgust": "3x"}, min_images_per_class=2, gan=TINY_GAN),
            progress=False,
        )
        honest = assess(generator, data, QualityConfig(**TINY_QUALITY), emotions=("disgust",))
        train = data.split("train")
        monkeypatch.setattr(
            quality, "generate", lambda net, labels, seed: train.images[np.arange(len(labels)) % len(train)]
        )
        copied = assess(generator, data, QualityConfig(**TINY_QUALITY), emotions=("disgust",))
        assert copied.report["classes"]["disgust"]["copy_share"] == 1.0
        assert copied.report["classes"]["disgust"]["nn_distance_median"] == pytest.approx(0, abs=1e-3)
        assert honest.report["classes"]["disgust"]["copy_share"] < 1.0
