"""The MLflow UI, served from a test store, shows the runs and the champion in headless Chromium
(tests/ui/browser.py: Debian's `chromium`, which `.ci/run` installs; skipped with the reason
without it)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from tests.ui.browser import chromium_page, needs_chromium

pytestmark = pytest.mark.slow


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


@pytest.fixture
def browser():
    with chromium_page() as tools:
        yield tools


def shows(browser, url: str, *texts: str) -> None:
    """Open `url` and wait (up to 3 minutes: MLflow's app is large for a loaded machine) until the
    page's text holds every one of `texts`."""
    browser.call("Page.navigate", url=url)
    condition = " && ".join(f"document.body.innerText.includes({json.dumps(text)})" for text in texts)
    browser.wait_until(f"!!document.body && {condition}", seconds=180)


@needs_chromium
def test_registered_model_page_shows_the_champion(ui, browser):
    base, _ = ui
    shows(browser, f"{base}/#/models/fer_emotion", "fer_emotion", "champion", "challenger")


@needs_chromium
def test_experiment_page_lists_the_runs(ui, browser):
    base, experiment = ui
    # "Training runs" (3.x opens on the GenAI overview)
    shows(browser, f"{base}/#/experiments/{experiment}/runs", "ui-test-run-0", "ui-test-run-1")
