"""The commands as a user types them: `zenml pipeline run fer_data_check -c configs/data_check.yaml` in a plain
shell (no ZENML_CONFIG_PATH, no PYTHONPATH), after the README's set-up (`make setup`, `make stack`).

The project is a temporary folder with the configs; FERKIT_HOME (the documented override)
points its home at another, so the tests never touch the checkout's `.ferkit`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from tests.factories import FOLDER_EMOTIONS, USAGE_PREFIX, image_tree, write_zip

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A project folder set up as the README says, and a plain shell's environment for it."""
    if not (Path(sysconfig.get_paths()["purelib"]) / "ferkit_project.pth").is_file():
        pytest.fail("the venv lacks ferkit_project.pth: run `make setup` (python -m pipelines.by_name writes it)")
    work = tmp_path_factory.mktemp("by-name")
    folder = work / "project"
    shutil.copytree(ROOT / "configs", folder / "configs")
    data = write_zip(work / "fer.zip", image_tree(12))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_", "FERKIT_", "PYTHONPATH"))}
    env.update(FERKIT_HOME=str(work / "home"), FER2013_PATH=str(data), FERKIT_NO_PROGRESS="1")
    stack = subprocess.run([str(BIN / "ferkit"), "stack"], cwd=folder, env=env, capture_output=True, text=True)
    assert stack.returncode == 0, stack.stderr[-3000:]
    return folder, env


def zenml(project: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess:
    folder, env = project
    return subprocess.run([str(BIN / "zenml"), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("pipeline, config", [("fer_data_check", "configs/data_check.yaml")])
def test_the_pipeline_runs_by_its_name(project, pipeline, config):
    """`fer_training` by its name runs in tests/test_readme.py (the README's own block)."""
    result = zenml(project, "pipeline", "run", pipeline, "-c", config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "Pipeline run has finished" in result.stdout + result.stderr
    folder, env = project
    status = "from zenml.client import Client; print(Client().get_pipeline({!r}).runs[0].status.value)"
    query = [sys.executable, "-c", status.format(pipeline)]
    newest = subprocess.run(query, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert newest.stdout.strip().splitlines()[-1:] == ["completed"], newest.stderr[-2000:]


def test_a_plain_zenml_command_stays_on_the_projects_stack(project):
    """No ZENML_CONFIG_PATH exported: the venv's start-up hook points ZenML at the project's home."""
    folder, env = project
    described = zenml(project, "stack", "describe")
    assert described.returncode == 0, described.stderr[-2000:]
    assert "fer_local" in described.stdout + described.stderr
    assert (Path(env["FERKIT_HOME"]) / "zenml").is_dir()
    uri = subprocess.run([str(BIN / "ferkit"), "tracking-uri"], cwd="/", env=env, capture_output=True, text=True)
    assert uri.returncode == 0 and uri.stdout.startswith("sqlite:///" + env["FERKIT_HOME"]), uri.stderr[-2000:]


def test_every_pipeline_answers_to_its_name(project):
    """What `zenml pipeline run <name>` imports: each bare name is the Pipeline object of pipelines.<name>."""
    folder, env = project
    code = (
        "import importlib; from pipelines.by_name import PIPELINES\n"
        "for name in PIPELINES:\n"
        "    found = importlib.import_module(name)\n"
        "    same = found is getattr(importlib.import_module('pipelines.' + name), name)\n"
        "    print(name, type(found).__name__, same)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:4] == [
        f"{name} Pipeline True" for name in ("fer_training", "fer_retraining", "fer_batch_inference", "fer_data_check")
    ]


def plain(log: Path) -> str:
    """The text of a ZenML log without its colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))


def run_status(project: tuple[Path, dict[str, str]], pipeline: str) -> dict[str, str]:
    """{'run': status, step name: status} of the newest run of `pipeline`."""
    folder, env = project
    code = (
        f"from zenml.client import Client; run = Client().get_pipeline({pipeline!r}).runs[0]\n"
        "print('run', run.status.value)\n"
        "for name, step in run.steps.items(): print(name, step.status.value)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.count(" ") == 1)


def test_sigterm_during_ingest_stops_the_run(project, tmp_path):
    """`kill <pid>` of `zenml pipeline run` while it decodes images: the run stops within seconds and
    is not recorded as completed (ZenML raises its stop request inside the decoder; no face may
    swallow it as a bad file and read on)."""
    folder, env = project
    pool = list(image_tree(1, splits=("train",)).values())
    files = {  # about 40,000 faces, several seconds of decoding (a fresh archive: ingest is not cached)
        f"{'train' if split == 'train' else 'test'}/{emotion}/{USAGE_PREFIX[split]}_{i}.jpg": pool[i % len(pool)]
        for split, count in (("train", 4000), ("val", 900), ("test", 900))
        for emotion in FOLDER_EMOTIONS
        for i in range(count)
    }
    data = write_zip(tmp_path / "big.zip", files)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        run = subprocess.Popen(
            [str(BIN / "zenml"), "pipeline", "run", "fer_data_check", "-c", "configs/data_check.yaml"],
            cwd=folder, env={**env, "FER2013_PATH": str(data), "FERKIT_NO_PROGRESS": "0"}, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while not re.search(r"ingest:\s+\d+%", plain(log)):  # the bar: the step's own code decodes
                assert run.poll() is None, plain(log)[-3000:]
                assert time.monotonic() < deadline, "ingest never began decoding"
                time.sleep(0.1)
            time.sleep(1.0)  # inside the decoding of 40,000 faces
            assert run.poll() is None, "ingest finished before the signal: make the archive larger"
            stopped_at = time.monotonic()
            run.terminate()  # SIGTERM, what `kill <pid>` sends
            code = run.wait(timeout=120)
        finally:
            run.kill()
    said = plain(log)
    assert code != 0, said[-3000:]
    assert time.monotonic() - stopped_at < 60, said[-3000:]
    assert "Pipeline run has finished" not in said
    status = run_status(project, "fer_data_check")
    assert status["run"] in ("failed", "stopped"), status
    assert status["ingest_fer2013"] in ("failed", "stopped"), status
    assert "validate_data" not in status or status["validate_data"] not in ("completed", "running"), status
