"""The data set artifact: invariants, storage round trip, manifest and class weights."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data import EMOTIONS, FERDataset, IngestReport
from ferkit.data.manifest import MANIFEST_COLUMNS, build_manifest
from ferkit.data.weights import class_weights, effective_number_weights, inverse_frequency_weights
from tests.factories import face


def make_dataset(n_per_split: int = 14, duplicate: bool = False) -> FERDataset:
    n = 3 * n_per_split
    images = np.stack([face(i) for i in range(n)])
    if duplicate:
        images[-1] = images[0]  # a test image identical to a train image
    return FERDataset(
        images=images,
        labels=np.arange(n) % 7,
        splits=np.repeat([0, 1, 2], n_per_split),
        source_ids=[f"img_{i}.jpg" for i in range(n)],
        report=IngestReport(source="x.zip", converted=0),
    )


class TestFERDataset:
    def test_split_and_class_counts(self):
        data = make_dataset()
        assert data.split_counts() == {"train": 14, "val": 14, "test": 14}
        assert data.class_counts("train") == {name: 2 for name in EMOTIONS}
        assert len(data.split("val")) == 14

    def test_save_load_round_trip_keeps_everything(self, tmp_path):
        data = make_dataset()
        data.report.bad_files = ["bad.jpg"]
        data.save(tmp_path / "ds")
        loaded = FERDataset.load(tmp_path / "ds")
        assert loaded.fingerprint == data.fingerprint
        np.testing.assert_array_equal(loaded.source_ids, data.source_ids)
        assert loaded.report.bad_files == ["bad.jpg"]

    def test_fingerprint_follows_content(self):
        a, b = make_dataset(), make_dataset()
        assert a.fingerprint == b.fingerprint
        b.labels[0] = (b.labels[0] + 1) % 7
        assert a.fingerprint != b.fingerprint

    def test_synthetic_images_outside_train_are_refused(self):
        data = make_dataset()
        synthetic = np.zeros(len(data), dtype=bool)
        synthetic[-1] = True  # a test-split image
        with pytest.raises(ValueError, match="synthetic images may only belong to the train split"):
            FERDataset(data.images, data.labels, data.splits, data.source_ids, synthetic=synthetic)

    @pytest.mark.parametrize(
        "field, value, message",
        [("labels", 7, "labels must index EMOTIONS"), ("splits", 3, "splits must index SPLITS")],
    )
    def test_out_of_range_codes_are_refused(self, field, value, message):
        data = make_dataset()
        arrays = {"labels": data.labels.copy(), "splits": data.splits.copy()}
        arrays[field][0] = value
        with pytest.raises(ValueError, match=message):
            FERDataset(data.images, arrays["labels"], arrays["splits"], data.source_ids)

    def test_wrong_image_shape_is_refused(self):
        with pytest.raises(ValueError, match=r"\(N, 48, 48\)"):
            FERDataset(np.zeros((2, 32, 32), np.uint8), [0, 1], [0, 0], ["a", "b"])


class TestManifest:
    def test_one_row_per_image_with_pixel_statistics(self):
        data = make_dataset(duplicate=True)
        manifest = build_manifest(data)
        assert tuple(manifest.columns) == MANIFEST_COLUMNS
        assert len(manifest) == len(data)
        assert manifest["split"].tolist()[:1] == ["train"] and manifest["split"].tolist()[-1] == "test"
        assert manifest["label"].iloc[3] == EMOTIONS[3]
        assert manifest["pixel_mean"].iloc[5] == pytest.approx(data.images[5].mean(), rel=1e-5)
        assert manifest["pixel_std"].iloc[5] == pytest.approx(data.images[5].std(), rel=1e-4)
        # Identical pixels, identical hash; different pixels, different hash.
        assert manifest["pixel_hash"].iloc[0] == manifest["pixel_hash"].iloc[-1]
        assert manifest["pixel_hash"].nunique() == len(data) - 1

    def test_converted_images_keep_their_original_format(self):
        data = make_dataset()
        data.report.original_formats = {"img_2.jpg": [96, 64, "RGB"]}
        row = build_manifest(data).iloc[2]
        assert (row["width"], row["height"], row["mode"], row["converted"]) == (96, 64, "RGB", True)


class TestClassWeights:
    def test_inverse_frequency(self):
        labels = np.array([0] * 4 + [1] * 1 + [2] * 2 + [3] * 8 + [4] * 4 + [5] * 4 + [6] * 5)
        weights = inverse_frequency_weights(labels)
        n, k = len(labels), 7
        np.testing.assert_allclose(weights, [n / (k * c) for c in (4, 1, 2, 8, 4, 4, 5)])
        assert weights[1] == weights.max()  # the rarest class weighs most

    def test_balanced_labels_give_ones(self):
        np.testing.assert_allclose(inverse_frequency_weights(np.repeat(np.arange(7), 3)), np.ones(7))

    def test_absent_class_is_named(self):
        with pytest.raises(ValueError, match="disgust"):
            inverse_frequency_weights(np.array([0, 2, 3, 4, 5, 6]))

    def test_effective_number_is_normalised_and_ordered(self):
        labels = np.array([0] * 400 + [1] * 10 + [2] * 100 + [3] * 700 + [4] * 100 + [5] * 100 + [6] * 100)
        weights = effective_number_weights(labels, beta=0.999)
        assert weights.sum() == pytest.approx(7)
        assert weights[1] > weights[2] > weights[0] > weights[3]  # fewer images, more weight
        # Softer than inverse frequency: the rare/common ratio shrinks.
        inverse = inverse_frequency_weights(labels)
        assert weights[1] / weights[3] < inverse[1] / inverse[3]

    def test_power_tempers_inverse_frequency(self):
        labels = np.array([0] * 4 + [1] * 1 + [2] * 2 + [3] * 8 + [4] * 4 + [5] * 4 + [6] * 5)
        full = inverse_frequency_weights(labels)
        root = inverse_frequency_weights(labels, power=0.5)
        np.testing.assert_allclose(root, np.sqrt(full))
        np.testing.assert_allclose(inverse_frequency_weights(labels, power=0.0), np.ones(7))
        # The rare class keeps the most weight, but its lead over the largest class shrinks.
        assert root.argmax() == 1 and 1 < root[1] / root[3] < full[1] / full[3]
        np.testing.assert_allclose(inverse_frequency_weights(np.repeat(np.arange(7), 3), power=0.5), np.ones(7))
        for bad in (-0.5, 1.5):
            with pytest.raises(ValueError, match=r"power must lie in \[0, 1\]"):
                inverse_frequency_weights(labels, power=bad)

    def test_typed_weights_record_power(self):
        labels = np.repeat(np.arange(7), [5, 1, 5, 9, 5, 5, 5])
        weights = class_weights(labels, power=0.5)
        assert weights.method == "inverse_frequency" and weights.power == 0.5 and weights.beta is None
        assert weights.weights["disgust"] == pytest.approx(5**0.5)  # N / (K * n) = 35 / (7 * 1)
        assert class_weights(labels, method="effective_number").power is None  # power is inverse frequency's

    def test_typed_weights_record_method_and_counts(self):
        labels = np.repeat(np.arange(7), [5, 1, 5, 9, 5, 5, 5])
        weights = class_weights(labels, method="effective_number", beta=0.9)
        assert weights.method == "effective_number" and weights.beta == 0.9
        assert weights.counts["happy"] == 9 and len(weights.as_list()) == 7
        assert weights.table().splitlines()[0] == "emotion,train_images,weight"
        with pytest.raises(ValueError, match="unknown class-weight method"):
            class_weights(labels, method="sqrt")
