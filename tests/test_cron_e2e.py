"""`ferkit schedule install` under Debian's real cron daemon: an every-minute `fer_data_check` runs to the end.

The schedule goes into the crontab of the user running the tests (root: the venv's
interpreter lives under /root, which no other user may enter), next to whatever that
crontab holds; the crontab is saved first and put back byte for byte afterwards, and
the schedule's name is unique to the test run. The project, its ZenML home and the data
live in a temporary folder. The daemon is started here (and stopped again) unless one
is already running. Skipped with the reason where cron is missing or the tests are not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.factories import image_tree, write_zip

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    """A shell's environment without the tests' ZenML/MLflow/ferkit settings."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_", "FERKIT_", "PYTHONPATH"))}
    return {**keep, **extra}


def _daemon_running() -> bool:
    return subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0


@pytest.fixture
def saved_crontab():
    """The current crontab, put back exactly as it was after the test."""
    if shutil.which("cron") is None or shutil.which("crontab") is None:
        pytest.skip("Debian's cron is not installed (.ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("starting the cron daemon needs root")
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    yield
    if before.returncode == 0:
        subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
    else:
        subprocess.run(["crontab", "-r"], capture_output=True)


@pytest.fixture
def cron_daemon(saved_crontab):
    started = None
    if not _daemon_running():
        started = subprocess.Popen(["cron", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    yield
    if started is not None:
        started.terminate()
        started.wait(timeout=30)


def test_cron_runs_an_every_minute_schedule_to_completion(cron_daemon):
    work = Path(tempfile.mkdtemp(prefix="ferkit-cron-"))
    try:
        project, home = work / "project", work / "home"
        (project / "configs").mkdir(parents=True)
        shutil.copy(ROOT / "configs" / "data_check.yaml", project / "configs" / "data_check.yaml")
        data = write_zip(work / "fer.zip", image_tree(2))
        env = _clean_env(FERKIT_HOME=str(home), FER2013_PATH=str(data))
        name = f"e2e-{os.getpid()}"
        ferkit = str(BIN / "ferkit")
        subprocess.run([ferkit, "stack", "--root", str(project)], env=env, cwd=project, check=True, capture_output=True)
        install = subprocess.run(
            [ferkit, "schedule", "install", "--cron", "* * * * *", "--name", name, "--pipeline", "fer_data_check",
             "--config", "configs/data_check.yaml", "--project", str(project)],
            env=env, cwd=project, capture_output=True, text=True,
        )  # fmt: skip
        assert install.returncode == 0, install.stderr
        assert f"ferkit-schedule:{name}" in subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout

        log, deadline = home / "logs" / f"{name}.log", time.time() + 420
        while time.time() < deadline and f"schedule {name}: exit" not in (log.read_text() if log.exists() else ""):
            time.sleep(5)
        text = log.read_text() if log.exists() else "(no log: cron never ran the job)"
        assert f"ferkit schedule {name}: exit 0" in text, text[-4000:]
        assert "fer_data_check" in text

        removed = subprocess.run([ferkit, "schedule", "remove", name], env=env, capture_output=True, text=True)
        assert removed.returncode == 0, removed.stderr
        listed = subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout
        assert f"ferkit-schedule:{name}" not in listed and not (home / "schedules" / f"{name}.sh").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)
