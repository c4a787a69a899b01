"""The same bad file gets the same answer at every entry point: the ingest step of the pipelines,
`ferkit info`, `validate`, `evaluate` and `predict`, and the served model's row."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from ferkit.cli import main
from ferkit.data import file_sha256, read_fer2013
from ferkit.data.images import BadImage, read_gray
from ferkit.inference.photos import faces_in_file
from ferkit.inference.predictor import Predictor
from ferkit.inference.rows import predict_rows
from ferkit.models import TrainedModel, build_model
from steps.ingest.ingest_fer2013 import ingest_fer2013
from tests.factories import blank_png, face, image_tree, jpeg_bytes, write_zip

BAD_FILES = {
    "no_image": b"these bytes are no image",
    "too_large": b"\x89PNG" + b"\x00" * (3 * (1 << 19)),  # 1.5 MB, over FERKIT_MAX_FILE_MB=1 below
    "too_many_pixels": blank_png(13_000, 13_000, header_only=True),
    "truncated": jpeg_bytes(face(7), fmt="PNG")[:70],
}


def reason_of(raw: bytes) -> str:
    with pytest.raises(BadImage) as caught:
        read_gray(raw)
    return str(caught.value)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    network = build_model("plain_cnn", widths=[4, 4, 8, 8])
    path = tmp_path_factory.mktemp("model") / "model.pt"
    TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, network.state_dict()).save(path)
    return path


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_every_entry_point_names_the_file_with_the_same_reason(kind, tmp_path, checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("FERKIT_MAX_FILE_MB", "1")
    raw, member = BAD_FILES[kind], f"test/fear/PrivateTest_{kind}.png"
    reason = reason_of(raw)
    archive = write_zip(tmp_path / "d.zip", {**image_tree(16), member: raw})  # one bad file in 337

    # the data readers, and the pipelines' ingest step
    assert read_fer2013(archive, progress=False).report.bad_reasons == {member: reason}
    data, _ = ingest_fer2013.entrypoint(source_sha256=file_sha256(archive), data_path=str(archive))
    assert data.report.bad_reasons == {member: reason}

    # ferkit info, validate --json, evaluate --json
    assert main(["info", str(archive)]) == 0
    assert f"{member}: {reason}" in capsys.readouterr().out
    assert main(["validate", str(archive), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bad_reasons"] == {member: reason}
    assert main(["evaluate", "--model", str(checkpoint), "--data", str(archive), "--json", "--bootstrap", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["unread"]["bad_reasons"] == {member: reason}

    # ferkit predict on the file itself (exit 1: a file could not be read), and the served model's row
    photo = tmp_path / f"{kind}.png"
    photo.write_bytes(raw)
    assert faces_in_file(photo).error == f"cannot read image: {reason}"
    assert main(["predict", str(photo), "--model", str(checkpoint)]) == 1
    assert f"{photo}: cannot read image: {reason}" in capsys.readouterr().out
    served = predict_rows(Predictor(TrainedModel.load(checkpoint)), pd.DataFrame({"image": [raw]}))
    assert served.loc[0, "error"] == reason


def test_the_pipeline_config_can_set_the_limits(tmp_path):
    from ferkit.data import DataError

    archive = write_zip(tmp_path / "d.zip", image_tree(2))
    with pytest.raises(DataError, match="holds 42 files, over the limit of 10"):
        ingest_fer2013.entrypoint(
            source_sha256=file_sha256(archive), data_path=str(archive), read_limits={"max_files": 10}
        )
    with pytest.raises(ValueError, match=r"unknown read limit\(s\) \['max_faces'\]"):
        ingest_fer2013.entrypoint(source_sha256="", data_path=str(archive), read_limits={"max_faces": 10})
