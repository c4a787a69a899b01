"""What git keeps out of the repository: FER2013, anything derived from it, and the faces users
drop for retraining, wherever the commands in README put them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a git checkout"
)


def ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0


@pytest.mark.parametrize(
    "path",
    [
        "data/new/train/angry/face_0001.png",  # README: mkdir -p data/new, then drop a batch there
        "data/new/batch.zip",
        "data/new/batch.csv",
        "fer2013.csv",
        "somewhere/fer2013.zip",
        ".ferkit/zenml/config.yaml",
        "tests/data/cache.npz",
    ],
)
def test_data_and_state_stay_out_of_git(path):
    assert ignored(path), f"{path} would show up in git status and could be committed"


@pytest.mark.parametrize("path", ["configs/cpu.yaml", "steps/__init__.py", "docs/results.md", "tests/data.py"])
def test_the_project_itself_is_not_ignored(path):
    assert not ignored(path)
