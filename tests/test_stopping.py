"""A stop request that code we do not own swallows still stops the work.

ZenML's step signal handler raises an ordinary exception wherever the main thread is; when that is
inside Python's logging or ZenML's log capture (a progress bar drawing, a line being stored), the
exception is caught there and the step would run to completion. The literal `zenml pipeline run`
stopped by SIGTERM: tests/pipelines/test_by_name.py.
"""

from __future__ import annotations

import io
import logging
import signal

import pytest

from ferkit.data import read_fer2013, sources
from ferkit.stopping import raise_if_stop_requested, watch_stop_requests
from tests.factories import image_tree, write_zip

STOPPED = "train/fear/Training_33.jpg"


class Stopped(Exception):
    """What a runner's signal handler raises: an ordinary Exception, as ZenML's are."""


def stopping(signum, frame):
    raise Stopped(f"signal {signum}")


@pytest.fixture
def stop_on_sigterm():
    previous = signal.signal(signal.SIGTERM, stopping)
    yield
    signal.signal(signal.SIGTERM, previous)


def swallowed_sigterm() -> None:
    """A SIGTERM delivered where a catch-all swallows what its handler raises."""
    try:
        signal.raise_signal(signal.SIGTERM)
    except Exception:  # noqa: BLE001 - the code we do not own
        pass


class SignallingStream(io.StringIO):
    """A log stream that is written to when the signal arrives."""

    writes = 0

    def write(self, text: str) -> int:
        SignallingStream.writes += 1
        signal.raise_signal(signal.SIGTERM)
        return super().write(text)


@pytest.fixture
def log_during_read(monkeypatch):
    """Reading STOPPED logs a line through Python's logging, whose handler swallows what is raised
    while it writes (`Handler.handleError`), as it swallows anything raised in a handler."""
    logger = logging.getLogger("ferkit.tests.stopping")
    handler = logging.StreamHandler(SignallingStream())
    logger.addHandler(handler)
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays silent, as in production
    read, names = sources.ZipSource.read, []

    def logging_read(self, name):
        names.append(name)
        if name == STOPPED:
            logger.warning("reading %s", name)
        return read(self, name)

    monkeypatch.setattr(sources.ZipSource, "read", logging_read)
    yield names
    logger.removeHandler(handler)


@pytest.fixture
def archive(tmp_path):
    files = image_tree(16)
    assert STOPPED in files
    return write_zip(tmp_path / "fer.zip", files)


def test_a_swallowed_request_is_raised_at_the_next_checkpoint(stop_on_sigterm):
    went_on = False
    with pytest.raises(Stopped, match=f"signal {signal.SIGTERM}"), watch_stop_requests():
        swallowed_sigterm()
        raise_if_stop_requested()
        went_on = True
    assert not went_on


def test_a_swallowed_request_is_raised_when_the_block_ends(stop_on_sigterm):
    finished = False
    with pytest.raises(Stopped), watch_stop_requests():
        swallowed_sigterm()
        finished = True
    assert finished  # the body ran on (nothing checked), and still the block did not end quietly


def test_a_failure_after_the_request_gives_way_to_the_request(stop_on_sigterm):
    with pytest.raises(Stopped) as caught, watch_stop_requests():
        swallowed_sigterm()
        raise ValueError("what the interrupted code failed with next")
    assert isinstance(caught.value.__cause__, ValueError)


def test_nothing_is_remembered_outside_a_watch_or_after_it(stop_on_sigterm):
    swallowed_sigterm()
    raise_if_stop_requested()  # no watch: nothing remembered, nothing raised
    with pytest.raises(Stopped), watch_stop_requests():
        swallowed_sigterm()
    with watch_stop_requests():  # the next watch starts clean
        raise_if_stop_requested()


def test_a_request_left_behind_by_a_watch_cut_short_does_not_reach_the_next(stop_on_sigterm, monkeypatch):
    """A second signal can land while a watch is being left, before it forgets its request; the next
    step's watch starts clean anyway."""
    from ferkit import stopping

    monkeypatch.setattr(stopping._Requests, "pending", Stopped("an earlier step's"))
    with watch_stop_requests():
        raise_if_stop_requested()


def test_the_handlers_in_force_are_put_back_and_default_actions_left_alone(stop_on_sigterm):
    before = signal.getsignal(signal.SIGINT)
    previous_pipe = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with watch_stop_requests():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous_pipe)
    with watch_stop_requests():
        assert signal.getsignal(signal.SIGTERM) is not stopping
        with watch_stop_requests():  # nested: wrapped once
            assert getattr(signal.getsignal(signal.SIGTERM), "ferkit_watches", None) is stopping
    assert signal.getsignal(signal.SIGTERM) is stopping
    assert signal.getsignal(signal.SIGINT) is before


def test_a_nested_watch_raises_the_request_and_the_outer_one_sees_it(stop_on_sigterm):
    with pytest.raises(Stopped), watch_stop_requests():
        with pytest.raises(Stopped), watch_stop_requests():
            swallowed_sigterm()
        raise_if_stop_requested()


def test_ingest_stops_when_logging_swallowed_the_request(stop_on_sigterm, log_during_read, archive):
    with pytest.raises(Stopped, match=f"signal {signal.SIGTERM}"), watch_stop_requests():
        read_fer2013(archive, progress=False)
    assert log_during_read[-1] == STOPPED  # stopped before the next image, not at the end


def test_without_a_watch_logging_swallows_the_request(stop_on_sigterm, log_during_read, archive):
    """The control: the request really is lost in logging, and the read runs to the end."""
    writes = SignallingStream.writes
    data = read_fer2013(archive, progress=False)
    assert SignallingStream.writes == writes + 1  # the signal came, in the log handler
    assert STOPPED in data.source_ids


def test_the_ingest_step_stops_when_logging_swallowed_the_request(stop_on_sigterm, log_during_read, archive):
    from ferkit.data import file_sha256
    from steps.ingest.ingest_fer2013 import ingest_fer2013

    with pytest.raises(Stopped, match=f"signal {signal.SIGTERM}"):
        ingest_fer2013.entrypoint(source_sha256=file_sha256(archive), data_path=str(archive))
    assert log_during_read[-1] == STOPPED  # at the next image, not when the step returned


def test_every_step_stops_when_asked():
    """Each step's entrypoint runs inside a watch (`@context.stops_when_asked` under `@step`)."""
    import importlib
    from pathlib import Path

    from zenml.steps import BaseStep

    from steps.context import stops_when_asked

    root = Path(__file__).resolve().parents[1]
    found, written = [], 0
    for path in sorted((root / "steps").rglob("*.py")):
        written += sum(line.startswith("@step") for line in path.read_text().splitlines())
        module = importlib.import_module(".".join(path.relative_to(root).with_suffix("").parts))
        for name, value in vars(module).items():
            if isinstance(value, BaseStep) and value.entrypoint.__module__ == module.__name__:
                found.append(name)
                assert value.entrypoint.__code__ is stops_when_asked(print).__code__, f"{path.name}: {name}"
                # ZenML keeps its own decorator's line out of the cache key, as for a bare entrypoint
                assert "@step" not in value.source_code_cache_value, f"{path.name}: {name}"
    assert len(found) == written, found


def test_training_stops_at_the_next_batch(stop_on_sigterm):
    from ferkit.models import build_model
    from ferkit.training import TrainConfig, fit
    from tests.training.test_training import SMALL, two_class_faces

    x, y = two_class_faces(256, seed=0)
    model = build_model("plain_cnn", widths=[8, 8, 8, 8])
    batches = []

    def swallow_on_the_third(module, inputs):
        batches.append(len(inputs[0]))
        if len(batches) == 3:
            swallowed_sigterm()

    model.register_forward_pre_hook(swallow_on_the_third)
    with pytest.raises(Stopped), watch_stop_requests():
        fit(model, x, y, x[:16], y[:16], TrainConfig(epochs=3, **SMALL))
    assert len(batches) == 3  # of 24 batches
