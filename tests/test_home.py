"""Where a ferkit home keeps ZenML's state: another home never switches the checkout's stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ferkit.home import apply_defaults, project_root, zenml_repository_path


def test_the_checkouts_home_uses_the_checkouts_repository_and_any_other_home_its_own(tmp_path):
    root = project_root()
    assert zenml_repository_path({"FERKIT_HOME": str(root / ".ferkit")}) is None
    assert zenml_repository_path({}) is None  # the checkout's home by default
    assert zenml_repository_path({"FERKIT_HOME": str(tmp_path)}) == tmp_path.resolve() / "repo"
    # ZenML's config moved alone: its stacks are not the ones the checkout's `.zen` names.
    assert zenml_repository_path({"ZENML_CONFIG_PATH": str(tmp_path / "z")}) == tmp_path.resolve() / "z" / "repo"
    assert zenml_repository_path({"ZENML_CONFIG_PATH": str(root / ".ferkit" / "zenml")}) is None  # the Makefile's
    given = {"FERKIT_HOME": str(tmp_path), "ZENML_REPOSITORY_PATH": str(tmp_path / "elsewhere")}
    assert zenml_repository_path(given) == tmp_path / "elsewhere"

    environ = {"FERKIT_HOME": str(tmp_path)}
    apply_defaults(environ)
    assert environ["ZENML_REPOSITORY_PATH"] == str(tmp_path.resolve() / "repo")
    assert environ["ZENML_CONFIG_PATH"] == str(tmp_path.resolve() / "zenml")
    checkout = {"FERKIT_HOME": str(root / ".ferkit")}
    apply_defaults(checkout)
    assert "ZENML_REPOSITORY_PATH" not in checkout
    assert checkout["ZENML_CUSTOM_SOURCE_ROOT"] == environ["ZENML_CUSTOM_SOURCE_ROOT"] == str(root)
    mine = {"FERKIT_HOME": str(tmp_path), "ZENML_CUSTOM_SOURCE_ROOT": str(tmp_path / "code")}
    apply_defaults(mine)
    assert mine["ZENML_CUSTOM_SOURCE_ROOT"] == str(tmp_path / "code")  # a user's own setting stands


def test_zenml_takes_its_code_from_the_checkout_in_any_home(tmp_path):
    """In a home of its own, ZenML's source root and the code archive a Kubeflow or Kubernetes run
    uploads are the checkout's, not the home's repository folder (as ZenML itself works it out, in a
    fresh interpreter of the project's venv)."""
    root = project_root()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "FERKIT_"))}
    env["FERKIT_HOME"] = str(tmp_path / "home")
    (tmp_path / "home" / "repo").mkdir(parents=True)
    subprocess.run([str(Path(sys.executable).parent / "zenml"), "init", "--path", str(tmp_path / "home" / "repo")], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    probe = (
        "from zenml.client import Client; from zenml.utils import source_utils; "
        "from zenml.utils.code_utils import CodeArchive; import json; "
        "from steps.train.train_model import train_model; "
        "print(Client.find_repository()); print(source_utils.get_source_root()); "
        "print(train_model.resolve().import_path, train_model.resolve().type.value); "
        "print(json.dumps(sorted(CodeArchive(source_utils.get_source_root()).get_files())))"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    repository, source_root, step_source, files = out.stdout.strip().splitlines()[-4:]
    assert repository == str((tmp_path / "home" / "repo").resolve())  # the home's stack, not the checkout's
    assert source_root == str(root)
    assert step_source == "steps.train.train_model.train_model user"  # with the repository folder: unknown
    assert {"pipelines/fer_training.py", "steps/train/train_model.py", "ferkit/home.py"} <= set(json.loads(files))
