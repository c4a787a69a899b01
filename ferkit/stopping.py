"""Stop requests that reach the work even where the code they landed in swallowed them.

A runner that turns SIGTERM or Ctrl-C into an ordinary exception (ZenML's step signal handler
does) raises it wherever the main thread happens to be. Much of that code catches everything:
Python's logging reports an exception raised inside a handler and carries on, ZenML's log
capture drops one raised while it stores a line, so a request that lands while a progress bar
draws is lost and the step runs to completion. Inside `watch_stop_requests()` every request is
remembered with what the handler raised; `raise_if_stop_requested()`, at the work's own
checkpoints (each image read, each batch), raises it again, and so does leaving the block.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

WATCHED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Requests:
    """The request the innermost watch caught (None: none yet), and how deep watches nest."""

    pending: BaseException | None = None
    depth = 0


def _watching(handler: Callable[[int, FrameType | None], object]) -> Callable[[int, FrameType | None], object]:
    def watched(signum: int, frame: FrameType | None) -> object:
        try:
            return handler(signum, frame)
        except BaseException as exc:
            if _Requests.pending is None:
                _Requests.pending = exc
            raise

    watched.ferkit_watches = handler  # type: ignore[attr-defined]
    return watched


@contextmanager
def watch_stop_requests() -> Iterator[None]:
    """Within, a stop request raised by the SIGTERM or SIGINT handler in force is raised again by
    `raise_if_stop_requested` and on leaving the block, whatever swallowed it in between.

    Wraps the handlers in force on entry (a default action or an ignored signal is left alone:
    nothing to swallow) and puts them back on exit. Reentrant; outside the main thread, where
    Python delivers no signals, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _Requests.depth == 0:
        _Requests.pending = None  # what an earlier watch caught on its way out is not this one's
    wrapped = {}
    _Requests.depth += 1
    try:
        for number in WATCHED_SIGNALS:
            handler = signal.getsignal(number)
            if callable(handler) and not hasattr(handler, "ferkit_watches"):
                wrapped[number] = handler
                signal.signal(number, _watching(handler))
        yield
    except BaseException as exc:
        pending = _Requests.pending
        if pending is not None and exc is not pending:
            raise pending from exc  # what the body failed with came after the stop request
        raise
    else:
        raise_if_stop_requested()
    finally:
        _Requests.depth -= 1
        if _Requests.depth == 0:
            _Requests.pending = None
        for number, handler in wrapped.items():
            signal.signal(number, handler)


def raise_if_stop_requested() -> None:
    """Raise the stop request a watched handler raised, if any (nothing outside a watch)."""
    pending = _Requests.pending
    if pending is not None:
        raise pending
