"""Headless Chromium driven over the DevTools protocol, and the servers the UI tests start.

Chromium is Debian's `chromium` package; `.ci/run` installs it. Tests that need it are
skipped with that reason where it is missing.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a closed network: no background connections, no sandbox as root.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, what: str, said: IO[str], seconds: float = 120) -> None:
    """Until `url` answers; `said` is the file the process writes its stderr to (a pipe nobody
    reads would stall a chatty process)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except (OSError, urllib.error.URLError):
            if process.poll() is not None:
                said.seek(0)
                pytest.fail(f"{what} exited {process.returncode}: {said.read()[-3000:]}")
            time.sleep(0.5)
    pytest.fail(f"{what} did not answer within {seconds} s")


class DevTools:
    """The few DevTools protocol calls the tests need, over one page's websocket."""

    def __init__(self, websocket_url: str):
        from websockets.sync.client import connect

        self.socket = connect(websocket_url, max_size=None, open_timeout=30)
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == message_id:
                assert "error" not in message, message["error"]
                return message.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_until(self, expression: str, seconds: float = 60):
        """Poll `expression` until it is true; a page still loading (its context destroyed or not yet
        there: a protocol error) counts as not yet."""
        deadline, error = time.time() + seconds, None
        while time.time() < deadline:
            try:
                value = self.evaluate(expression)
            except AssertionError as exc:
                value, error = None, exc
            if value:
                return value
            time.sleep(0.3)
        try:
            shown = self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
        except AssertionError as exc:
            shown = f"(unreadable: {exc})"
        pytest.fail(f"the page never satisfied {expression!r} in {seconds} s; last error: {error}; it shows: {shown!r}")

    def choose_file(self, selector: str, path: Path) -> None:
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", files=[str(path)], nodeId=node)


@contextmanager
def chromium_page() -> Iterator[DevTools]:
    """A headless Chromium's first tab. The browser picks its own debugging port and writes it to
    its profile (no port is chosen here for another process to take first)."""
    profile = Path(tempfile.mkdtemp(prefix="ferkit-chromium-"))
    said = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=said,
    )
    tools = None
    try:
        deadline = time.time() + 120
        active = profile / "DevToolsActivePort"
        while not (active.is_file() and active.read_text().strip()):
            if process.poll() is not None:
                said.seek(0)
                pytest.fail(f"chromium exited {process.returncode}: {said.read()[-3000:]}")
            assert time.time() < deadline, "chromium opened no debugging port in 120 s"
            time.sleep(0.2)
        port = int(active.read_text().split()[0])
        while True:  # the debugging port can answer before the first tab exists
            listed = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            pages = [p for p in listed if p["type"] == "page"]
            if pages:
                break
            assert time.time() < deadline, f"chromium opened no page: {listed}"
            time.sleep(0.2)
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
    finally:
        if tools is not None:
            tools.socket.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        said.close()
        shutil.rmtree(profile, ignore_errors=True)
