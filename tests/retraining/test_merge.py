"""Merging a new batch into the champion's data, and the decision to retrain."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS, SPLITS
from ferkit.retraining import decide_retraining, merge_new_data, unseen_mask


def dataset(n: int, seed: int, split: str = "train") -> FERDataset:
    rng = np.random.default_rng(seed)
    return FERDataset(
        images=rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8),
        labels=np.arange(n) % len(EMOTIONS),
        splits=np.full(n, SPLITS.index(split), dtype=np.uint8),
        source_ids=np.array([f"img{seed}_{i}" for i in range(n)]),
    )


def base() -> FERDataset:
    parts = [dataset(70, 0), dataset(14, 1, "val"), dataset(14, 2, "test")]
    return FERDataset(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        splits=np.concatenate([p.splits for p in parts]),
        source_ids=np.concatenate([p.source_ids for p in parts]),
    )


class TestMerge:
    def test_new_images_join_train_or_the_holdout_and_eval_splits_stay(self):
        old, batch = base(), dataset(70, 9, "test")  # the batch's own split is ignored
        merged, holdout, lineage = merge_new_data(old, batch, "ab" * 32, holdout_fraction=0.2)
        assert lineage.held_out == len(holdout) == 14 and lineage.added_to_train == 56
        assert merged.split_counts() == {"train": 70 + 56, "val": 14, "test": 14}
        for split in ("val", "test"):
            np.testing.assert_array_equal(merged.split(split).images, old.split(split).images)
        assert set(holdout.class_counts().values()) == {2}  # 20% of each class of 10
        assert all(s.startswith("new:abababababab:") for s in holdout.source_ids)
        # The held-out images never reach the merged data.
        merged_keys = {img.tobytes() for img in merged.images}
        assert not any(img.tobytes() in merged_keys for img in holdout.images)
        assert lineage.parent_fingerprint == old.fingerprint and lineage.merged_fingerprint == merged.fingerprint

    def test_a_batch_merged_twice_adds_nothing(self):
        once, held, first = merge_new_data(base(), dataset(21, 5), "c" * 64)
        twice, held_again, second = merge_new_data(once, dataset(21, 5), "c" * 64, previous_holdout=held)
        assert first.new_images == 21 and second.new_images == 0 and second.known_images == 21
        assert twice.fingerprint == once.fingerprint and held_again.fingerprint == held.fingerprint

    def test_the_holdout_carries_earlier_batches_forward(self):
        _, held, _ = merge_new_data(base(), dataset(21, 5), "c" * 64)
        _, both, lineage = merge_new_data(base(), dataset(21, 6), "d" * 64, previous_holdout=held)
        assert lineage.held_out == 7 and lineage.holdout_images == len(both) == 14
        assert both.images[:7].tobytes() == held.images.tobytes()

    def test_duplicates_inside_a_batch_count_once(self):
        batch = dataset(7, 3)
        doubled = FERDataset(
            images=np.concatenate([batch.images] * 2),
            labels=np.concatenate([batch.labels] * 2),
            splits=np.concatenate([batch.splits] * 2),
            source_ids=np.array([f"x{i}" for i in range(14)]),
        )
        _, _, lineage = merge_new_data(base(), doubled, "d" * 64, holdout_fraction=0.0)
        assert lineage.known_images == 7 and lineage.added_to_train == 7

    def test_unseen_mask_checks_every_known_set(self):
        batch, other = dataset(7, 3), dataset(7, 4)
        mixed = FERDataset(
            images=np.concatenate([batch.images[:3], other.images[:4]]),
            labels=np.zeros(7, int),
            splits=np.zeros(7, np.uint8),
            source_ids=np.array([str(i) for i in range(7)]),
        )
        assert unseen_mask(mixed, batch).tolist() == [False] * 3 + [True] * 4
        assert not unseen_mask(mixed, batch, other).any()

    def test_same_seed_same_holdout(self):
        a = merge_new_data(base(), dataset(35, 4), "e" * 64, seed=3)[1]
        b = merge_new_data(base(), dataset(35, 4), "e" * 64, seed=3)[1]
        c = merge_new_data(base(), dataset(35, 4), "e" * 64, seed=4)[1]
        assert a.fingerprint == b.fingerprint != c.fingerprint

    def test_bad_holdout_fraction(self):
        with pytest.raises(ValueError, match="holdout_fraction"):
            merge_new_data(base(), dataset(7, 1), "f" * 64, holdout_fraction=1.0)

    def test_lineage_tags_are_flat_strings(self):
        _, _, lineage = merge_new_data(base(), dataset(14, 6), "0" * 64)
        tags = lineage.tags()
        assert tags["lineage.new_images"] == "14" and tags["lineage.added.disgust"] == "2"
        assert all(isinstance(v, str) for v in tags.values())


class TestDecision:
    def test_new_data_trains(self):
        d = decide_retraining(new_images=5, drift_share=0.0)
        assert d.retrain and "5 new labelled images" in d.reason

    def test_no_new_data_and_no_drift_skips_and_says_why(self):
        d = decide_retraining(new_images=0, drift_share=0.1)
        assert not d.retrain and d.reason.startswith("skipped") and "force" in d.reason

    def test_drift_alone_trains(self):
        d = decide_retraining(new_images=0, drift_share=0.8)
        assert d.retrain and "drifted" in d.reason

    def test_force_trains_without_data(self):
        d = decide_retraining(new_images=0, drift_share=None, force=True)
        assert d.retrain and d.forced and "no batch to compare" in d.reason

    def test_too_few_new_images_is_no_new_data(self):
        assert not decide_retraining(new_images=3, drift_share=None, min_new_images=10).retrain
