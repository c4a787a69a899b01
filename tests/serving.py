"""A real `mlflow models serve` on loopback, for the serving tests and the serving benchmark."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_model(model_uri: str, tracking_uri: str, cwd: Path, workers: int = 1, timeout: float = 180) -> Iterator[str]:
    """Serve `model_uri` with `--env-manager local` on 127.0.0.1; yields the base URL, stops the server after."""
    port = free_port()
    log = open(cwd / "server.log", "w")  # noqa: SIM115 (closed in finally)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        f"mlflow models serve did not come up:\n{(cwd / 'server.log').read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def post(url: str, body: object, content_type: str = "application/json", timeout: float = 60) -> tuple[int, str]:
    """(HTTP status, body text) of a POST to `<url>/invocations`; `body` that is not bytes is sent as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
