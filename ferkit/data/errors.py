"""Errors raised while reading data; each names the file, folder or row at fault."""

from __future__ import annotations

import signal


class DataError(ValueError):
    """A data set could not be read as FER2013; the message says where and why."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The configured data path does not exist."""


def raised_by_a_signal_handler(exc: BaseException) -> bool:
    """Whether `exc` came out of a Python signal handler rather than from the code it interrupted.

    A runner that turns SIGTERM or Ctrl-C into an ordinary exception (ZenML's step signal handler
    does) raises it wherever the step happens to be, often inside a decoder; a catch-all that
    blames the file must let it through, or the stop request is lost and a good file is refused.
    """
    handlers = set()
    for number in signal.valid_signals():
        handler = signal.getsignal(number)
        code = getattr(getattr(handler, "__func__", handler), "__code__", None)
        if code is not None:
            handlers.add(code)
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code in handlers:
            return True
        frame = frame.tb_next
    return False
