"""The quality gate catches exactly the defect a data set has, and applies the policy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ferkit.data import read_fer2013
from ferkit.data.manifest import build_manifest
from ferkit.quality import CHECKS, DataQualityError, QualityPolicy, apply_policy, run_expectations
from steps.validate.validate_data import validate_data
from tests.factories import face, image_tree, jpeg_bytes, write_zip

PER_CLASS = 4  # per split and class: balanced, so class proportions match exactly


def clean_files() -> dict[str, bytes]:
    return image_tree(PER_CLASS)


def first(files: dict[str, bytes], prefix: str) -> str:
    return next(name for name in files if name.startswith(prefix))


def with_cross_split_duplicate(files):
    """A test image replaced by the pixels of a train image (same label): leakage."""
    train, test = first(files, "train/happy/"), first(files, "test/happy/PrivateTest")
    files[test] = files[train]
    return files, {"no_train_eval_leakage"}, [test]


def with_blank_image(files):
    name = first(files, "train/sad/")
    files[name] = jpeg_bytes(np.zeros((48, 48), np.uint8), fmt="PNG")
    return files, {"no_blank_images"}, [name]


def with_wrong_size_image(files):
    name = first(files, "train/fear/")
    files[name] = jpeg_bytes(np.stack([face(999, 64)] * 3, -1), fmt="PNG")
    return files, {"images_48x48_gray"}, [name]


def with_empty_class(files):
    files = {k: v for k, v in files.items() if "/disgust/" not in k}
    return files, {"train_classes_present"}, ["disgust"]


def with_label_conflict(files):
    """Two train images with identical pixels and different labels."""
    source, target = first(files, "train/angry/"), first(files, "train/surprise/")
    files[target] = files[source]
    return files, {"no_label_conflicts", "no_duplicates_within_split"}, [source, target]


def validate(tmp_path, files, policy=None):
    data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
    manifest = build_manifest(data)
    report, ge_json = run_expectations(manifest, policy or QualityPolicy())
    return data, manifest, report, ge_json


class TestDefects:
    def test_clean_set_passes_with_nothing_flagged(self, tmp_path):
        _, _, report, ge_json = validate(tmp_path, clean_files())
        assert report.passed and report.failed == []
        assert [c.name for c in report.checks] == list(CHECKS)
        assert report.summary["duplicate_groups"] == 0 and report.summary["blank_images"] == 0
        assert set(ge_json) == {"manifest", "splits", "classes"} and ge_json["manifest"]["success"]

    @pytest.mark.parametrize(
        "defect",
        [with_cross_split_duplicate, with_blank_image, with_wrong_size_image, with_empty_class, with_label_conflict],
    )
    def test_each_defect_is_caught_alone_and_names_its_rows(self, tmp_path, defect):
        files, expected_checks, offenders = defect(clean_files())
        _, _, report, _ = validate(tmp_path, files)
        assert {c.name for c in report.failed} == expected_checks
        for check in report.failed:
            assert set(offenders) <= set(check.examples), (check.name, check.examples)

    def test_unknown_label_in_a_manifest_stops_and_is_named(self, tmp_path):
        data = read_fer2013(write_zip(tmp_path / "d.zip", clean_files()), progress=False)
        manifest = build_manifest(data)
        manifest["label"] = manifest["label"].astype(str)
        manifest.loc[3, "label"] = "contempt"
        report, _ = run_expectations(manifest, QualityPolicy())
        assert {c.name for c in report.failed} >= {"labels_known"}
        assert report.check("labels_known").examples == [manifest.loc[3, "id"]]
        assert not report.passed and "labels_known" in report.stop_message()

    def test_summary_counts_leakage(self, tmp_path):
        files, _, _ = with_cross_split_duplicate(clean_files())
        _, _, report, _ = validate(tmp_path, files)
        s = report.summary
        assert (s["duplicate_groups"], s["files_in_duplicate_groups"]) == (1, 2)
        assert (
            s["test_images_with_train_copy"],
            s["val_images_with_train_copy"],
            s["train_copies_of_eval_images"],
        ) == (1, 0, 1)

    def test_class_proportion_gap_beyond_tolerance_warns(self, tmp_path):
        files = clean_files()
        for name in [n for n in files if n.startswith("test/happy/PrivateTest")][:3]:
            del files[name]
        _, _, report, _ = validate(tmp_path, files)
        assert {c.name for c in report.failed} == {"class_proportions_match"}
        # Removing test images of one class shifts every class's test share; happy's the most.
        assert "happy" in report.check("class_proportions_match").examples


class TestPolicy:
    def test_dedupe_drops_train_copies_only(self, tmp_path):
        files, _, _ = with_cross_split_duplicate(clean_files())
        data, manifest, report, _ = validate(tmp_path, files, QualityPolicy(dedupe="drop_from_train"))
        cleaned = apply_policy(data, manifest, report)
        assert len(cleaned) == len(data) - 1
        assert cleaned.split_counts()["test"] == data.split_counts()["test"]
        assert report.actions == {"train_copies_of_eval_images": 1}

    def test_drop_blank_drops_blank_train_images(self, tmp_path):
        files, _, (blank,) = with_blank_image(clean_files())
        data, manifest, report, _ = validate(tmp_path, files, QualityPolicy(drop_blank=True))
        cleaned = apply_policy(data, manifest, report)
        assert blank not in set(cleaned.source_ids) and len(cleaned) == len(data) - 1

    def test_gate_stops_on_fail_on_checks_and_names_them(self, tmp_path):
        files, _, _ = with_cross_split_duplicate(clean_files())
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        policy = QualityPolicy(fail_on=["no_train_eval_leakage"])
        with pytest.raises(DataQualityError, match=r"no_train_eval_leakage.*PrivateTest"):
            validate_data.entrypoint(fer_dataset=data, manifest=build_manifest(data), policy=policy)

    def test_gate_warns_and_passes_data_on(self, tmp_path):
        files, _, _ = with_cross_split_duplicate(clean_files())
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        cleaned, report, summary = validate_data.entrypoint(
            fer_dataset=data, manifest=build_manifest(data), policy=QualityPolicy(dedupe="drop_from_train")
        )
        assert report.passed and report.check("no_train_eval_leakage").action == "warn"
        assert len(cleaned) == len(data) - 1
        assert "no_train_eval_leakage" in str(summary) and "warn" in str(summary)


class TestValidateCLI:
    def test_json_counts(self, tmp_path):
        files, _, _ = with_cross_split_duplicate(clean_files())
        path = write_zip(tmp_path / "d.zip", files)
        result = subprocess.run(
            [sys.executable, "-m", "ferkit.cli", "validate", str(path), "--json"], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["test_images_with_train_copy"] == 1 and out["duplicate_groups"] == 1
        assert out["class_counts"]["train"]["happy"] == PER_CLASS
        assert {c["name"] for c in out["checks"] if not c["passed"]} == {"no_train_eval_leakage"}

    def test_stop_exit_code_and_policy_file(self, tmp_path):
        files, _, _ = with_blank_image(clean_files())
        path = write_zip(tmp_path / "d.zip", files)
        (tmp_path / "policy.yaml").write_text("fail_on: [no_blank_images]\n")
        result = subprocess.run(
            [sys.executable, "-m", "ferkit.cli", "validate", str(path), "--policy", str(tmp_path / "policy.yaml")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1 and "**STOP**" in result.stdout

    def test_unreadable_data_is_reported(self, tmp_path):
        files = clean_files()
        files["train/contempt/Training_1.jpg"] = jpeg_bytes(face(1))
        path = write_zip(tmp_path / "d.zip", files)
        result = subprocess.run(
            [sys.executable, "-m", "ferkit.cli", "validate", str(path), "--json"], capture_output=True, text=True
        )
        assert result.returncode == 3  # input unreadable
        out = json.loads(result.stdout)
        assert out["readable"] is False and "train/contempt" in out["error"]
