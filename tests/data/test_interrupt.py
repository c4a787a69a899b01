"""A stop request (SIGTERM, Ctrl-C) that lands while a file is being read stops the read; it is
never blamed on the file. ZenML's step signal handler raises an ordinary exception wherever the
step is, most often inside a decoder, whose catch-all would otherwise record a good face as bad
and read on. The literal `zenml pipeline run` stopped by SIGTERM: tests/pipelines/test_by_name.py."""

from __future__ import annotations

import signal

import pytest
from PIL import Image

from ferkit.data import images, read_fer2013, sources
from tests.factories import image_tree, write_zip

STOPPED = "train/fear/Training_33.jpg"


class Stopped(Exception):
    """What a runner's signal handler raises: an ordinary Exception, as ZenML's are."""


@pytest.fixture
def stop_on_sigterm():
    def handler(signum, frame):
        raise Stopped(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    yield
    signal.signal(signal.SIGTERM, previous)


def interrupt_at(name: str, original):
    """`original` with a SIGTERM delivered inside it while `name` is being read."""

    def reading(*args, **kwargs):
        if reading.current == name:
            signal.raise_signal(signal.SIGTERM)
        return original(*args, **kwargs)

    reading.current = None
    return reading


@pytest.fixture
def archive(tmp_path):
    files = image_tree(16)  # 336 faces: one bad file stays under the 1% bound
    assert STOPPED in files
    return write_zip(tmp_path / "fer.zip", files)


def follow_members(monkeypatch, *hooks):
    """Tell each hook which member is being read (ZipSource.read is where a member's reading starts)."""
    read = sources.ZipSource.read

    def tracking(self, name):
        for hook in hooks:
            hook.current = name
        return read(self, name)

    monkeypatch.setattr(sources.ZipSource, "read", tracking)


@pytest.mark.parametrize("where", ["decoding", "reading the member", "reading the EXIF block"])
def test_a_stop_request_inside_a_read_stops_the_read(stop_on_sigterm, monkeypatch, archive, where):
    if where == "decoding":
        hook = interrupt_at(STOPPED, images._to_gray)
        monkeypatch.setattr(images, "_to_gray", hook)
    elif where == "reading the member":
        hook = interrupt_at(STOPPED, sources.read_bounded)
        monkeypatch.setattr(sources, "read_bounded", hook)
    else:
        hook = interrupt_at(STOPPED, Image.Image.getexif)
        monkeypatch.setattr(Image.Image, "getexif", hook)
    follow_members(monkeypatch, hook)
    with pytest.raises(Stopped, match=f"signal {signal.SIGTERM}"):
        read_fer2013(archive, progress=False)


def test_a_decoder_failure_is_still_the_files_fault_with_a_handler_installed(stop_on_sigterm, monkeypatch, archive):
    """The control: the same place raising on its own (not from a signal handler) is a bad file."""
    decode = images._to_gray

    def failing(img, limits):
        if failing.current == STOPPED:
            raise Stopped("the decoder's own error")
        return decode(img, limits)

    failing.current = None
    monkeypatch.setattr(images, "_to_gray", failing)
    follow_members(monkeypatch, failing)
    data = read_fer2013(archive, progress=False)
    assert data.report.bad_files == [STOPPED]
    assert "cannot decode image: Stopped: the decoder's own error" in data.report.bad_reasons[STOPPED]
