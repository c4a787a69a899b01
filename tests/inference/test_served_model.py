"""The served model answers row by row: each bad row gets its own `error`, the others their
predictions; a request malformed as a whole gets HTTP 400 with one message and no traceback.
Checked in process and against a real `mlflow models serve`."""

from __future__ import annotations

import base64
import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ferkit.data import EMOTIONS
from ferkit.data.images import ReadLimits
from ferkit.inference.predictor import Predictor
from ferkit.inference.rows import MAX_ROWS, RequestError, predict_rows
from ferkit.models import TrainedModel, build_model
from tests.factories import blank_png, face
from tests.serving import post, served_model


def tiny_model() -> TrainedModel:
    torch.manual_seed(0)
    return TrainedModel(
        "plain_cnn", {"widths": (4, 4, 8, 8)}, build_model("plain_cnn", widths=[4, 4, 8, 8]).state_dict()
    )


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD = face(1)
# (row, the error it must get): every one is a row-level problem, answered in that row.
BAD_ROWS = [
    ({"image": b"these bytes are no image"}, "not an image file (unknown format)"),
    ({"image": png(GOOD)[:60]}, "cannot decode image"),
    ({"image": blank_png(13_000, 13_000, header_only=True)}, "over the limit of 50,000,000"),
    ({"pixels": GOOD.ravel().tolist()}, "`pixels` is 1-D (2304 values)"),
    ({"pixels": [[1, 2, 3], [4, 5]]}, "ragged rows"),
    ({"pixels": np.full((48, 48), 300).tolist()}, "must lie in 0-255, found values from 300 to 300"),
    ({"pixels": np.full((48, 48), 0.5).tolist()}, "whole numbers; declare pixel_range '0-1'"),
    ({"pixels": np.full((48, 48), 2.0).tolist(), "pixel_range": "0-1"}, "declared 0-1 hold values from 2 to 2"),
    ({"pixels": GOOD.tolist(), "pixel_range": "0-65535"}, "`pixel_range` must be one of"),
    ({"pixels": [[[1, 2], [3, 4]]]}, "must be a 2-D grayscale array, got 3 or more dimensions"),
    ({"pixels": [[[0] * 200_000]]}, "got 3 or more dimensions"),  # refused before numpy copies it
    ({"pixels": [[10**400, 1], [1, 1]]}, "a number too large for any pixel range"),  # JSON allows it
    ({"image": "!!not base64"}, "`image` is text but not base64"),
    ({"image": 12}, "`image` must be encoded image bytes"),
]
# Rows JSON cannot carry, that reach the model in process or from a parquet body (a list cell is an array).
IN_PROCESS_ROWS = [({"pixels": GOOD.tolist(), "pixel_range": np.array(["0-1", "x"])}, "`pixel_range` must be one of")]


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"image": None, "pixels": None, "pixel_range": None, **row} for row in rows])


class TestRows:
    @pytest.fixture(scope="class")
    def predictor(self) -> Predictor:
        return Predictor(tiny_model())

    def test_each_bad_row_is_named_and_the_good_rows_are_predicted(self, predictor):
        bad = BAD_ROWS + IN_PROCESS_ROWS
        rows = [{"image": png(GOOD)}] + [row for row, _ in bad] + [{"pixels": GOOD.tolist()}]
        out = predict_rows(predictor, table(rows))
        assert list(out.columns) == ["label", "confidence", "uncertain", *EMOTIONS, "error"] and len(out) == len(rows)
        for i, (_, expected) in enumerate(bad, start=1):
            assert expected in out.loc[i, "error"], (i, out.loc[i, "error"])
            assert out.loc[i, "label"] is None and out.loc[i, "angry"] is None
            assert out.loc[i, "confidence"] is None and out.loc[i, "uncertain"] is None
        expected = predictor.predict_proba(GOOD[None])[0]
        for i in (0, len(rows) - 1):
            assert out.loc[i, "error"] == "" and out.loc[i, "label"] == EMOTIONS[int(expected.argmax())]
            np.testing.assert_allclose(out.loc[i, list(EMOTIONS)].to_numpy(float), expected, atol=1e-6)

    def test_a_dark_face_is_not_rescaled_and_0_1_is_declared(self, predictor):
        dark = np.ones((48, 48), dtype=np.uint8)  # maximum 1 in 0-255: must stay 1, not become 255
        out = predict_rows(
            predictor, table([{"pixels": dark.tolist()}, {"pixels": (GOOD / 255).tolist(), "pixel_range": "0-1"}])
        )
        np.testing.assert_allclose(
            out.loc[0, list(EMOTIONS)].to_numpy(float), predictor.predict_proba(dark[None])[0], atol=1e-6
        )
        np.testing.assert_allclose(
            out.loc[1, list(EMOTIONS)].to_numpy(float), predictor.predict_proba(GOOD[None])[0], atol=1e-6
        )
        assert (out["error"] == "").all() and out["angry"].dtype == float

    def test_limits_apply_to_served_images_as_to_data(self, predictor):
        small = ReadLimits(max_image_pixels=100)
        out = predict_rows(predictor, table([{"image": png(GOOD)}, {"pixels": GOOD.tolist()}]), small)
        assert "48x48 = 2,304 pixels, over the limit of 100" in out.loc[0, "error"]
        assert out.loc[1, "error"] == "`pixels` holds 2,304 values, over the limit of 100"
        flat = predict_rows(predictor, table([{"pixels": list(range(200))}, {"pixels": [[0], [0] * 200]}]), small)
        assert list(flat["error"]) == [f"`pixels` holds {n} values, over the limit of 100" for n in (200, 201)]

    def test_base64_text_over_the_file_limit_is_refused_before_it_is_decoded(self, predictor):
        small = ReadLimits(max_file_bytes=3_000)
        fits = base64.b64encode(png(GOOD) + b"\0" * (3_000 - len(png(GOOD)))).decode()
        over = base64.b64encode(b"\0" * 3_003).decode()
        not_text = "!" * 8_000  # too long to decode within the limit: refused by size, not as non-base64
        out = predict_rows(predictor, table([{"image": fits}, {"image": over}, {"image": not_text}]), small)
        assert out.loc[0, "error"] == ""
        assert out.loc[1, "error"].startswith("`image` decodes to") and "over the limit of" in out.loc[1, "error"]
        assert "FERKIT_MAX_FILE_MB" in out.loc[2, "error"]

    def test_rows_without_pixel_range_beside_rows_with_it(self, predictor):
        records = pd.DataFrame.from_records(
            [{"pixels": GOOD.tolist()}, {"pixels": (GOOD / 255).tolist(), "pixel_range": "0-1"}]
        )
        out = predict_rows(predictor, records)  # pandas fills the missing pixel_range with NaN
        assert (out["error"] == "").all()
        assert out.loc[0, "label"] == out.loc[1, "label"]

    def test_a_failure_that_is_not_the_input_gives_no_traceback(self, predictor, monkeypatch):
        from mlflow.exceptions import MlflowException

        from ferkit.registry.pyfunc_model import FERPyfunc

        served = FERPyfunc()
        served.predictor, served.limits = predictor, ReadLimits()
        monkeypatch.setattr(predictor, "predict_proba", lambda faces, raw=None: 1 / 0)  # a bug inside the model
        with pytest.raises(MlflowException) as caught:
            served.predict(None, table([{"pixels": GOOD.tolist()}]))
        assert caught.value.get_http_status_code() == 500
        assert caught.value.message == "prediction failed: ZeroDivisionError: division by zero"
        assert "stack_trace" not in caught.value.serialize_as_json()
        with pytest.raises(MlflowException) as caught:
            served.predict(None, pd.DataFrame({"foo": [1]}))
        assert caught.value.get_http_status_code() == 400

    @pytest.mark.parametrize(
        ("request_table", "message"),
        [
            (pd.DataFrame({"foo": [1]}), "no `image` or `pixels` column"),
            (pd.DataFrame({"pixels": [None], "colour": ["red"]}), r"unknown column\(s\) \['colour'\]"),
            (pd.DataFrame({"pixels": [None] * (MAX_ROWS + 1)}), "over the limit of 4096"),
            ([1, 2, 3], "expected a table"),
        ],
    )
    def test_a_malformed_request_is_refused_as_a_whole(self, predictor, request_table, message):
        with pytest.raises(RequestError, match=message):
            predict_rows(predictor, request_table)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The pyfunc as `register_model` logs it, served by `mlflow models serve` on loopback."""
    from ferkit.registry.publish import log_and_register

    root = tmp_path_factory.mktemp("served")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient().create_experiment("serve", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment("serve")
    with mlflow.start_run():
        version = log_and_register(tiny_model(), "fer_served")
    mlflow.set_tracking_uri("")
    with served_model(f"models:/fer_served/{version}", uri, root) as url:
        yield url, root


def split(columns: list[str], rows: list[list]) -> dict:
    return {"dataframe_split": {"columns": columns, "data": rows}}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.slow
class TestServed:
    def test_every_bad_row_gets_its_error_over_http(self, server):
        url, root = server
        rows = [[b64(png(GOOD)), None, None]]
        for row, _ in BAD_ROWS:
            image = row.get("image")
            rows.append([b64(image) if isinstance(image, bytes) else image, row.get("pixels"), row.get("pixel_range")])
        status, body = post(url, split(["image", "pixels", "pixel_range"], rows))
        assert status == 200, body
        predictions = json.loads(body)["predictions"]  # strict JSON: no NaN
        assert "NaN" not in body and len(predictions) == len(rows)
        assert predictions[0]["error"] == "" and predictions[0]["label"] in EMOTIONS
        assert sum(predictions[0][e] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-4)
        for prediction, (_, expected) in zip(predictions[1:], BAD_ROWS):
            assert expected in prediction["error"] and prediction["label"] is None
        assert "Traceback" not in (root / "server.log").read_text()

    def test_a_photo_of_any_size_round_trips(self, server):
        from skimage import data as skdata

        buffer = io.BytesIO()
        Image.fromarray(skdata.astronaut()).save(buffer, format="PNG")
        status, body = post(server[0], split(["image"], [[b64(buffer.getvalue())]]))
        assert status == 200 and json.loads(body)["predictions"][0]["label"] in EMOTIONS

    @pytest.mark.parametrize(
        ("body", "content_type", "message"),
        [
            (split(["foo"], [[1]]), "application/json", "no `image` or `pixels` column"),
            (b"{not json", "application/json", "valid JSON"),
            ({"inputs": [1, 2, 3]}, "application/json", "no `image` or `pixels` column"),
            (split(["pixels"], [[None]] * (MAX_ROWS + 1)), "application/json", "over the limit of 4096"),
        ],
    )
    def test_a_malformed_request_gets_400_and_one_message(self, server, body, content_type, message):
        status, text = post(server[0], body, content_type)
        assert status == 400, text
        answer = json.loads(text)
        assert message in answer["message"]
        assert "stack_trace" not in answer and "Traceback" not in text


def test_photos_predict_and_the_served_model_read_camera_images_like_the_data_readers(tmp_path):
    """A 16-bit PNG and a sideways phone photo: the same face as the plain 8-bit upright file, everywhere."""
    from ferkit.inference.photos import faces_in_file

    predictor = Predictor(tiny_model())
    upright = face(2)[:, :40]
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned: a viewer turns it 90 degrees counter-clockwise
    buffer = io.BytesIO()
    Image.fromarray(np.rot90(upright, k=-1).copy()).save(buffer, format="PNG", exif=exif.tobytes())
    sixteen = io.BytesIO()
    Image.fromarray(upright.astype(np.uint16) * 257).save(sixteen, format="PNG")
    expected = predictor.predict_proba([upright])[0]
    for raw in (buffer.getvalue(), sixteen.getvalue()):
        (tmp_path / "photo.png").write_bytes(raw)
        crop = faces_in_file(tmp_path / "photo.png", detect=False).crops[0]
        np.testing.assert_allclose(predictor.predict_proba(crop[None])[0], expected, atol=1e-6)
        served = predict_rows(predictor, pd.DataFrame({"image": [raw]}))
        np.testing.assert_allclose(served.loc[0, list(EMOTIONS)].to_numpy(float), expected, atol=1e-6)
