"""`ferkit predict` on a real photo, pre-cropped faces, bad files and unresolvable models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.data import EMOTIONS
from ferkit.models import TrainedModel, build_model
from tests.factories import face


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    path = tmp_path_factory.mktemp("model") / "model.pt"
    TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict(), recipe={"tta_flip": True}).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from skimage import data as skdata

    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(skdata.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(face(1)).save(folder / "crop.png")
    Image.fromarray(np.full((200, 200), 128, np.uint8)).save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"this is not an image")
    return folder


def predict(*args: str) -> subprocess.CompletedProcess:
    # Checks on the way out that predicting never imported zenml (it must start fast).
    code = (
        "import sys; from ferkit.cli import main; rc = main(sys.argv[1:]); "
        "sys.exit(97 if 'zenml' in sys.modules else rc)"
    )
    return subprocess.run([sys.executable, "-c", code, "predict", *args], capture_output=True, text=True)


def test_finds_the_astronauts_face(checkpoint, images):
    result = predict(str(images / "astronaut.png"), "--model", str(checkpoint), "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    (found,) = entry["faces"]
    x, y, w, h = found["box"]
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # the face, not the suit or the flag
    assert found["label"] in EMOTIONS
    assert sum(found["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_folder_with_bad_file_and_no_face(checkpoint, images):
    result = predict(str(images), "--model", str(checkpoint), "--json")
    assert result.returncode == 1  # one file could not be read
    by_name = {e["file"].rsplit("/", 1)[1]: e for e in json.loads(result.stdout)}
    assert by_name["broken.jpg"]["error"].startswith("cannot read image")
    assert by_name["blank.png"]["error"] == "no face found" and by_name["blank.png"]["faces"] == []
    assert len(by_name["astronaut.png"]["faces"]) == 1


def test_a_strip_far_longer_than_wide_is_a_photo_without_a_face(checkpoint, tmp_path):
    """Shrunk for the face detector, a 1 x 3300 strip would be 0 pixels wide: a traceback that took
    the other files' results with it."""
    Image.fromarray(np.full((3300, 1), 128, np.uint8)).save(tmp_path / "strip.png")
    Image.fromarray(np.full((1, 3300), 128, np.uint8)).save(tmp_path / "band.png")
    result = predict(str(tmp_path), "--model", str(checkpoint), "--json")
    assert "Traceback" not in result.stderr, result.stderr
    by_name = {e["file"].rsplit("/", 1)[1]: e for e in json.loads(result.stdout)}
    assert {name: e["error"] for name, e in by_name.items()} == {
        "band.png": "no face found",
        "strip.png": "no face found",
    }


def test_no_detect_predicts_pre_cropped_faces(checkpoint, images):
    result = predict(str(images / "crop.png"), "--model", str(checkpoint), "--no-detect")
    assert result.returncode == 0, result.stderr
    assert "crop.png: box (0, 0, 48, 48) ->" in result.stdout


def test_unresolvable_model_is_one_line(images, tmp_path):
    result = predict(str(images / "crop.png"), "--model", "models:/nope@champion")
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "ferkit predict:" in result.stderr
