"""`ferkit schedule install` under Debian's real cron daemon: an every-minute `fer_data_check` runs to the end.

The schedule goes into the crontab of the user running the tests (root: the venv's
interpreter lives under /root, which no other user may enter), next to whatever that
crontab holds. Its name is unique to the test process (`e2e-test-<pid>`); afterwards only
lines with that name leave the crontab, so edits made to it meanwhile stay, and a line a
killed test run left behind (its process gone) is swept the next time the test runs. The project, its ZenML home and the data
live in a temporary folder. The daemon is started here (and stopped again) unless one
is already running. Skipped with the reason where cron is missing or the tests are not root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


NAME_PREFIX = "e2e-test-"
MARKER = re.compile(rf"# ferkit-schedule:{NAME_PREFIX}(\d+)\s*$")


def _crontab() -> str | None:
    listed = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    return listed.stdout if listed.returncode == 0 else None


def _drop_lines(keep: Callable[[str], bool], had_crontab: bool) -> None:
    """Rewrite the current crontab without the lines `keep` refuses (no crontab left when it had none
    and nothing else remains)."""
    text = _crontab()
    if text is None:
        return
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if keep(line)]
    if not had_crontab and not "".join(kept).strip():  # `ferkit schedule remove` leaves an empty one
        subprocess.run(["crontab", "-r"], capture_output=True)
    elif kept != lines:
        subprocess.run(["crontab", "-"], input="".join(kept), text=True, check=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def schedule_name():
    """This test process's schedule name; its lines, and a killed earlier run's, leave the crontab."""
    if shutil.which("cron") is None or shutil.which("crontab") is None:
        pytest.skip("Debian's cron is not installed (.ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("starting the cron daemon needs root")
    had_crontab = _crontab() is not None

    def stale(line: str) -> bool:
        found = MARKER.search(line)
        return found is not None and not _alive(int(found.group(1)))

    _drop_lines(lambda line: not stale(line), had_crontab)
    name = f"{NAME_PREFIX}{os.getpid()}"
    yield name
    _drop_lines(lambda line: not line.rstrip().endswith(f"# ferkit-schedule:{name}"), had_crontab)


@pytest.fixture
def cron_daemon(schedule_name):
    started = None
    if not _daemon_running():
        said = tempfile.TemporaryFile(mode="w+")
        started = subprocess.Popen(["cron", "-f"], stdout=subprocess.DEVNULL, stderr=said)
        time.sleep(1)
        if started.poll() is not None:
            said.seek(0)
            pytest.fail(f"cron -f exited {started.returncode}: {said.read()}")
    yield
    if started is not None:
        started.terminate()
        started.wait(timeout=30)


def test_cron_runs_an_every_minute_schedule_to_completion(cron_daemon, schedule_name):
    work = Path(tempfile.mkdtemp(prefix="ferkit-cron-"))
    try:
        project, home = work / "project", work / "home"
        (project / "configs").mkdir(parents=True)
        shutil.copy(ROOT / "configs" / "data_check.yaml", project / "configs" / "data_check.yaml")
        data = write_zip(work / "fer.zip", image_tree(2))
        env = _clean_env(FERKIT_HOME=str(home), FER2013_PATH=str(data))
        name = schedule_name
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
        # A run cron began in the test's last minute would work on in a folder about to go.
        subprocess.run(["pkill", "-KILL", "-f", str(work)], capture_output=True)
        deadline = time.time() + 30
        while (
            subprocess.run(["pgrep", "-f", str(work)], capture_output=True).returncode == 0 and time.time() < deadline
        ):
            time.sleep(0.2)
        shutil.rmtree(work, ignore_errors=True)
