"""The MLflow UI, served from a test store, shows the runs and the champion in headless Chromium.

Chromium is Debian's `chromium` package; `.ci/run` installs it. Without it the
test is skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow
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


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A store with two runs and `fer_emotion` v1 (challenger) and v2 (champion), served by `mlflow ui`."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("fer_training", artifact_location=(root / "artifacts").as_uri())
    versions = []
    for i, f1 in enumerate((0.51, 0.58)):
        with mlflow.start_run(experiment_id=experiment, run_name=f"ui-test-run-{i}") as run:
            mlflow.log_params({"train.epochs": 12, "model.backbone": "plain_cnn"})
            mlflow.log_metrics({"test.macro_f1": f1, "test.accuracy": f1 + 0.04})
        if not versions:
            client.create_registered_model("fer_emotion")
        versions.append(client.create_model_version("fer_emotion", f"{run.info.artifact_uri}/model", run.info.run_id))
    client.set_registered_model_alias("fer_emotion", "challenger", versions[0].version)
    client.set_registered_model_alias("fer_emotion", "champion", versions[1].version)
    mlflow.set_tracking_uri("")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "ui",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base, timeout=2)
            break
        except OSError:
            assert server.poll() is None, "mlflow ui exited"
            time.sleep(1)
    else:
        server.kill()
        pytest.fail("mlflow ui did not answer within 120 s")
    yield base, experiment
    server.terminate()
    server.wait(timeout=20)


def rendered_dom(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_registered_model_page_shows_the_champion(ui):
    base, _ = ui
    dom = rendered_dom(f"{base}/#/models/fer_emotion")
    assert "fer_emotion" in dom
    assert "champion" in dom and "challenger" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_experiment_page_lists_the_runs(ui):
    base, experiment = ui
    dom = rendered_dom(f"{base}/#/experiments/{experiment}/runs")  # "Training runs" (3.x opens on GenAI overview)
    assert "ui-test-run-0" in dom and "ui-test-run-1" in dom
