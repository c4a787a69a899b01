"""README cannot drift: every shell block marked `<!-- runnable -->` runs, in order, as a user would type it.

The blocks run in a temporary project (the checkout's configs, a fresh `FERKIT_HOME`,
generated faces as `FER2013_PATH`, a crontab file instead of the user's crontab) after the
README's set-up (`make stack`, that is `ferkit stack`), in a shell whose PATH starts with the
virtual environment, as after `source .venv/bin/activate`, and with no ZENML_CONFIG_PATH or
PYTHONPATH. A command that fails fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import image_tree, write_zip
from tests.inference.test_video import write_clip

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MARK = "<!-- runnable -->"
pytestmark = pytest.mark.slow


def runnable_blocks(text: str) -> list[str]:
    """The fenced shell blocks that follow a `<!-- runnable -->` line."""
    return [m.group(1) for m in re.finditer(re.escape(MARK) + r"\s*\n```(?:sh|bash)\n(.*?)```", text, re.S)]


def test_the_marked_blocks_are_found():
    blocks = runnable_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 6
    assert any("zenml pipeline run fer_training -c configs/smoke.yaml" in b for b in blocks)
    assert any("ferkit predict photo.jpg" in b for b in blocks)
    assert any("ferkit predict clip.mp4" in b for b in blocks) and any("--model model.onnx" in b for b in blocks)
    assert runnable_blocks("x\n<!-- runnable -->\n```sh\necho hi\n```\n```sh\nnot marked\n```") == ["echo hi\n"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    from PIL import Image
    from skimage import data as samples

    work = tmp_path_factory.mktemp("readme")
    folder = work / "project"
    shutil.copytree(ROOT / "configs", folder / "configs")
    Image.fromarray(samples.astronaut()).save(folder / "photo.jpg")  # a real photo with a face
    write_clip(folder / "clip.mp4", frames=12)  # two faces crossing a short video
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_", "FERKIT_", "PYTHONPATH"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        FERKIT_HOME=str(work / "home"),
        FER2013_PATH=str(write_zip(work / "fer2013.zip", image_tree(12))),
        FERKIT_CRONTAB_FILE=str(work / "crontab"),
        FERKIT_NO_PROGRESS="1",
    )
    setup = subprocess.run(["ferkit", "stack"], cwd=folder, env=env, capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr[-3000:]
    return folder, env


def test_every_runnable_block_of_the_readme_runs(project):
    folder, env = project
    for block in runnable_blocks((ROOT / "README.md").read_text()):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=folder, env=env, capture_output=True, text=True,
            timeout=1200,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"README block failed:\n{block}\n{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
        )
    crontab = Path(env["FERKIT_CRONTAB_FILE"]).read_text()
    assert "ferkit-schedule:retrain" not in crontab  # the block removed what it installed
    # The champion the blocks trained, from a folder outside the project.
    elsewhere = subprocess.run(
        ["ferkit", "predict", str(folder / "photo.jpg"), "--json"], cwd="/", env=env, capture_output=True, text=True
    )
    assert elsewhere.returncode == 0 and '"label"' in elsewhere.stdout, elsewhere.stderr[-2000:]
