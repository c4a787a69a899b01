"""`ferkit serve` in headless Chromium: a photo chosen in the page's file input comes back with
its face boxed and labelled, a broken file with the reason; the JSON API behind it answers the
same way to a plain HTTP client.

Chromium is driven over its DevTools protocol (the file input is set the way a user's choice
sets it, and the page's own JavaScript uploads it). Without Debian's `chromium` the browser
test is skipped with that reason.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image

from ferkit.data.labels import EMOTIONS
from ferkit.models import TrainedModel, build_model
from tests.ui.browser import chromium_page, free_port, needs_chromium, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from skimage import data as skdata

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skdata.astronaut()).save(folder / "astronaut.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing that decodes")
    torch.manual_seed(0)
    network = build_model("plain_cnn", widths=[4, 4, 8, 8])
    TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, network.state_dict(), recipe={"tta_flip": True},
                 calibration={"temperature": 1.2}).save(folder / "model.pt")  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def server(photos):
    port, said = free_port(), tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "ferkit.cli", "serve", "--model", str(photos / "model.pt"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=said,
        env={**os.environ, "FERKIT_MAX_FILE_MB": "1"},  # small enough to test the byte limit cheaply
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/api/health", process, "ferkit serve", said)
    yield base
    process.terminate()
    process.wait(timeout=20)


def post(url: str, data: bytes, content_type: str = "application/octet-stream") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class TestApi:
    def test_a_photo_gives_its_face(self, server, photos):
        status, body = post(f"{server}/api/predict", (photos / "astronaut.jpg").read_bytes())
        assert status == 200 and (body["width"], body["height"]) == (512, 512)
        (face,) = body["faces"]
        x, y, w, h = face["box"]
        assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200
        assert face["label"] in EMOTIONS and set(face["probabilities"]) == set(EMOTIONS)

    def test_bad_uploads_are_a_400_with_the_reason(self, server, photos):
        status, body = post(f"{server}/api/predict", (photos / "broken.png").read_bytes())
        assert status == 400 and body["error"].startswith("cannot read image:")
        status, body = post(f"{server}/api/predict?min_confidence=2", (photos / "astronaut.jpg").read_bytes())
        assert status == 400 and "param `min_confidence` must be a number from 0 to 1" in body["error"]
        status, body = post(f"{server}/api/predict", b"")
        assert status == 400 and "the request has no image" in body["error"]

    def test_the_page_s_form_upload_and_a_broken_form(self, server, photos):
        boundary = "ferkit-test-boundary"
        form = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + (photos / "astronaut.jpg").read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, body = post(f"{server}/api/predict", form, f"multipart/form-data; boundary={boundary}")
        assert status == 200 and len(body["faces"]) == 1
        status, body = post(f"{server}/api/predict", b"--x\r\nnonsense", "multipart/form-data")
        assert status == 400 and body["error"].startswith("the form cannot be read")
        status, body = post(f"{server}/api/predict", form.replace(b'name="image"', b'name="photo"'),
                            f"multipart/form-data; boundary={boundary}")  # fmt: skip
        assert status == 400 and body["error"] == "the form has no file field `image`"

    def test_an_upload_over_the_byte_limit_gets_its_413_not_a_reset_connection(self, server):
        for _ in range(3):  # the client is still sending when the server decides: no race may lose the answer
            status, body = post(f"{server}/api/predict", bytes(3_000_000))
            assert status == 413 and "over the limit" in body["error"]

    def test_a_body_far_over_the_limit_is_cut_off_not_read_to_its_end(self, server):
        """A client declaring a gigabyte is dropped after the 16 MB the server reads and discards."""
        host, port = server.removeprefix("http://").split(":")
        sent = 0
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(
                b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: 1000000000\r\n\r\n"
            )
            chunk = bytes(256 * 1024)
            with pytest.raises(OSError):  # reset or broken pipe once the server has closed
                while sent < 1_000_000_000:
                    connection.sendall(chunk)
                    sent += len(chunk)
        assert 16 * 2**20 <= sent < 64 * 2**20
        with urllib.request.urlopen(f"{server}/api/health", timeout=30) as response:
            assert json.loads(response.read())["status"] == "ok"


@pytest.fixture
def browser():
    with chromium_page() as tools:
        yield tools


@needs_chromium
def test_the_page_boxes_and_labels_an_uploaded_photo(server, photos, browser):
    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"{server}/")
    browser.wait_until("document.readyState === 'complete' && !!document.getElementById('file')")
    browser.choose_file("#file", photos / "astronaut.jpg")
    browser.wait_until("document.querySelectorAll('.box').length > 0")
    boxes = browser.evaluate("[...document.querySelectorAll('.box')].map(b => [b.dataset.label, b.innerText])")
    assert len(boxes) == 1
    label, caption = boxes[0]
    assert label in EMOTIONS and label in caption  # "1: happy 0.31" or "1: uncertain (happy 0.31)"
    assert browser.evaluate("document.getElementById('status').textContent") == "1 face."
    bars = browser.evaluate("document.querySelectorAll('#faces .bar').length")
    assert bars == len(EMOTIONS)
    # The box sits on the astronaut's face, in the page's own pixels.
    left, top, width = browser.evaluate(
        "(() => { const b = document.querySelector('.box'), i = document.getElementById('photo');"
        " return [b.offsetLeft / i.clientWidth, b.offsetTop / i.clientHeight, b.offsetWidth / i.clientWidth]; })()"
    )
    assert 0.25 < left + width / 2 < 0.6 and 0.05 < top < 0.35

    browser.choose_file("#file", photos / "broken.png")
    message = browser.wait_until(
        "document.getElementById('status').className === 'error' && document.getElementById('status').textContent"
    )
    assert message.startswith("cannot read image:")
    assert browser.evaluate("document.querySelectorAll('.box').length") == 0
