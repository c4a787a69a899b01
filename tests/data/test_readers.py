"""Reading FER2013 from a zip, a folder and the challenge CSV, and refusing bad input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from ferkit.data import DATA_ENV_VAR, EMOTIONS, DataError, DataNotFoundError, read_fer2013
from ferkit.data.labels import SPLITS
from tests.factories import csv_rows, face, image_tree, jpeg_bytes, write_csv, write_folder, write_zip


def _expected(files: dict[str, bytes]) -> dict[str, tuple[str, str]]:
    """member -> (split, emotion) as the Kaggle layout means it."""
    out = {}
    for name in files:
        top, emotion, filename = name.split("/")
        prefix = filename.split("_")[0]
        split = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}.get(prefix)
        out[name] = (split or ("train" if top == "train" else "test"), emotion)
    return out


class TestImageTree:
    @pytest.mark.parametrize("form", ["zip", "folder"])
    def test_reads_every_image_with_its_split_and_label(self, tmp_path, form):
        files = image_tree(2)
        path = write_zip(tmp_path / "d.zip", files) if form == "zip" else write_folder(tmp_path / "d", files)
        data = read_fer2013(path, progress=False)
        assert len(data) == len(files) == 2 * 7 * 3
        assert data.images.shape == (42, 48, 48) and data.images.dtype == np.uint8
        expected = _expected(files)
        for i, source_id in enumerate(data.source_ids):
            split, emotion = expected[source_id]
            assert SPLITS[data.splits[i]] == split
            assert EMOTIONS[data.labels[i]] == emotion
        assert data.split_counts() == {"train": 14, "val": 14, "test": 14}
        assert data.report.source_format == form
        assert data.report.missing_classes == {}

    def test_pixels_survive_decoding(self, tmp_path):
        # PNG is lossless, so the stored pixels must equal the written ones.
        pixels = face(7)
        files = {
            "train/happy/Training_1.png": jpeg_bytes(pixels, fmt="PNG"),
            "test/sad/PrivateTest_2.png": jpeg_bytes(face(8), fmt="PNG"),
        }
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        row = list(data.source_ids).index("train/happy/Training_1.png")
        np.testing.assert_array_equal(data.images[row], pixels)

    def test_canonical_label_order_is_the_csvs(self, tmp_path):
        files = {f"train/{e}/Training_{i}.jpg": jpeg_bytes(face(i)) for i, e in enumerate(["neutral", "sad", "angry"])}
        files["test/neutral/PublicTest_9.jpg"] = jpeg_bytes(face(9))
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        by_id = dict(zip(data.source_ids, data.labels))
        assert by_id["train/neutral/Training_0.jpg"] == 6
        assert by_id["train/sad/Training_1.jpg"] == 4
        assert by_id["train/angry/Training_2.jpg"] == 0

    def test_wrapping_folder_inside_zip_is_found(self, tmp_path):
        files = {f"fer2013/{k}": v for k, v in image_tree(1).items()}
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        assert len(data) == 21

    def test_test_folder_without_prefixes_is_all_test(self, tmp_path):
        files = image_tree(2, splits=("test",), prefixed=False)
        data = read_fer2013(write_folder(tmp_path / "other", files), progress=False)
        assert data.split_counts() == {"train": 0, "val": 0, "test": 14}

    def test_missing_classes_are_allowed_and_reported(self, tmp_path):
        files = image_tree({"happy": 2, "sad": 2}, splits=("test",), prefixed=False)
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        assert len(data) == 4
        assert data.report.missing_classes == {"test": ["angry", "disgust", "fear", "surprise", "neutral"]}

    def test_non_48x48_grayscale_images_are_converted_and_counted(self, tmp_path):
        rgb = np.stack([face(1, 96)] * 3, axis=-1)
        files = image_tree(1)
        files["train/happy/Training_900.png"] = jpeg_bytes(rgb, fmt="PNG")
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        assert data.report.converted == 1
        assert data.report.original_formats == {"train/happy/Training_900.png": [96, 96, "RGB"]}
        assert data.images.shape[1:] == (48, 48)

    def test_limit_per_class_caps_each_split_and_class(self, tmp_path):
        data = read_fer2013(write_zip(tmp_path / "d.zip", image_tree(4)), limit_per_class=1, progress=False)
        assert data.split_counts() == {"train": 7, "val": 7, "test": 7}

    @pytest.mark.parametrize("setting, shown", [("1", False), ("0", True)])
    def test_the_bar_follows_ferkit_no_progress(self, tmp_path, monkeypatch, capsys, setting, shown):
        """Cron logs and CI set FERKIT_NO_PROGRESS=1: the ingest step's bar stays out of them."""
        monkeypatch.setenv("FERKIT_NO_PROGRESS", setting)
        read_fer2013(write_zip(tmp_path / "fer.zip", image_tree(1)))
        assert ("ingest:" in capsys.readouterr().err) is shown


class TestBadImageTrees:
    def test_unknown_class_folder_is_named(self, tmp_path):
        files = image_tree(1)
        files["train/contempt/Training_77.jpg"] = jpeg_bytes(face(77))
        with pytest.raises(DataError, match="unknown class folder 'train/contempt'"):
            read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)

    def test_empty_split_folder_is_named(self, tmp_path):
        root = write_folder(tmp_path / "d", image_tree(1, splits=("test",)))
        (root / "train" / "happy").mkdir(parents=True)
        (root / "train" / "happy" / "notes.txt").write_text("no images here")
        with pytest.raises(DataError, match="split folder 'train/' holds no images"):
            read_fer2013(root, progress=False)

    def test_no_split_folders_is_an_error(self, tmp_path):
        with pytest.raises(DataError, match="no 'train/' or 'test/' folder"):
            read_fer2013(write_zip(tmp_path / "d.zip", {"happy/x.jpg": jpeg_bytes(face(1))}), progress=False)

    def test_undecodable_image_is_skipped_and_listed(self, tmp_path):
        files = image_tree(16)  # 336 images: one bad file is under 1%
        files["train/fear/Training_5000.jpg"] = b"not a jpeg at all"
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        assert data.report.bad_files == ["train/fear/Training_5000.jpg"]
        assert len(data) == 336

    def test_undecodable_image_fails_when_asked(self, tmp_path):
        files = image_tree(16)
        files["train/fear/Training_5000.jpg"] = b"not a jpeg at all"
        with pytest.raises(DataError, match="cannot read image 'train/fear/Training_5000.jpg': not an image file"):
            read_fer2013(write_zip(tmp_path / "d.zip", files), on_bad_image="fail", progress=False)

    def test_more_than_one_percent_bad_fails(self, tmp_path):
        files = image_tree(2)  # 42 images
        files["train/fear/Training_5000.jpg"] = b"garbage"
        with pytest.raises(DataError, match=r"1 of 43 images could not be read"):
            read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)

    @pytest.mark.parametrize("member", ["../evil/Training_1.jpg", "/abs/Training_1.jpg", "train/../../x.jpg"])
    def test_unsafe_zip_members_are_refused(self, tmp_path, member):
        path = tmp_path / "evil.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in image_tree(1).items():
                zf.writestr(name, data)
            zf.writestr(zipfile.ZipInfo(member), jpeg_bytes(face(3)))
        with pytest.raises(DataError, match="refusing zip member"):
            read_fer2013(path, progress=False)
        assert not (tmp_path.parent / "evil").exists() and not (tmp_path / "x.jpg").exists()


class TestCSV:
    def test_reads_rows_with_usage_splits(self, tmp_path):
        rows = csv_rows(2)
        data = read_fer2013(write_csv(tmp_path / "fer2013.csv", rows), progress=False)
        assert len(data) == 42
        assert data.split_counts() == {"train": 14, "val": 14, "test": 14}
        np.testing.assert_array_equal(data.labels[:14], np.repeat(np.arange(7), 2))
        np.testing.assert_array_equal(data.images[0].ravel(), np.array(rows[0][1].split(), dtype=np.uint8))
        assert data.source_ids[0] == "fer2013.csv:row2"
        assert data.report.source_format == "csv" and len(data.report.source_sha256) == 64

    def test_wrong_pixel_count_names_the_row(self, tmp_path):
        rows = csv_rows(1)
        rows[3] = (rows[3][0], "1 2 3", rows[3][2])
        with pytest.raises(DataError, match=r"row 5, column 'pixels': has 3 values, expected 2304"):
            read_fer2013(write_csv(tmp_path / "f.csv", rows), progress=False)

    @pytest.mark.parametrize("label", ["7", "-1", "happy"])
    def test_bad_label_names_the_row(self, tmp_path, label):
        rows = csv_rows(1)
        rows[0] = (label, rows[0][1], rows[0][2])
        with pytest.raises(DataError, match="row 2, column 'emotion'"):
            read_fer2013(write_csv(tmp_path / "f.csv", rows), progress=False)

    def test_bad_usage_names_the_row(self, tmp_path):
        rows = csv_rows(1)
        rows[1] = (rows[1][0], rows[1][1], "Validation")
        with pytest.raises(DataError, match="row 3, column 'Usage': 'Validation'"):
            read_fer2013(write_csv(tmp_path / "f.csv", rows), progress=False)

    def test_missing_column_is_named(self, tmp_path):
        (tmp_path / "f.csv").write_text("label,pixels\n0,1 2\n")
        with pytest.raises(DataError, match="missing column 'emotion'"):
            read_fer2013(tmp_path / "f.csv", progress=False)

    def test_csv_without_usage_is_all_test(self, tmp_path):
        path = tmp_path / "f.csv"
        path.write_text("emotion,pixels\n" + "".join(f"{r[0]},{r[1]}\n" for r in csv_rows(1)[:7]))
        data = read_fer2013(path, progress=False)
        assert data.split_counts() == {"train": 0, "val": 0, "test": 7}


class TestDataPath:
    def test_missing_path_names_it_and_how_to_get_fer2013(self, tmp_path):
        with pytest.raises(DataNotFoundError, match="not found at .*nope.zip.*msambare/fer2013.*fer2013.csv"):
            read_fer2013(tmp_path / "nope.zip")

    def test_unset_path_mentions_the_environment_variable(self, monkeypatch):
        monkeypatch.delenv(DATA_ENV_VAR, raising=False)
        with pytest.raises(DataNotFoundError, match=DATA_ENV_VAR):
            read_fer2013(None)

    def test_environment_variable_is_used(self, tmp_path, monkeypatch, fer_zip):
        monkeypatch.setenv(DATA_ENV_VAR, str(fer_zip))
        assert len(read_fer2013(None, progress=False)) == 63

    def test_unsupported_file_is_refused(self, tmp_path):
        (tmp_path / "data.txt").write_text("hello")
        with pytest.raises(DataError, match="neither a folder, a zip archive nor a .csv"):
            read_fer2013(tmp_path / "data.txt")


@pytest.mark.fer2013
def test_real_archive_matches_the_published_counts(real_fer2013):
    data = read_fer2013(real_fer2013, progress=False)
    assert data.split_counts() == {"train": 28709, "val": 3589, "test": 3589}
    assert data.class_counts("train")["disgust"] == 436
    assert data.class_counts("train")["happy"] == 7215
    assert data.class_counts("test")["neutral"] == 626
    assert data.report.converted == 0 and data.report.bad_files == []
