"""Shared fixtures; the data factories live in tests/factories.py."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports zenml: never touch the user's global ZenML or MLflow state.
_ZENML_HOME = tempfile.mkdtemp(prefix="ferkit-tests-zenml-")
os.environ["ZENML_CONFIG_PATH"] = os.path.join(_ZENML_HOME, "config")
os.environ["ZENML_REPOSITORY_PATH"] = os.path.join(_ZENML_HOME, "repo")
os.makedirs(os.environ["ZENML_REPOSITORY_PATH"], exist_ok=True)
os.environ["FERKIT_HOME"] = os.path.join(_ZENML_HOME, "ferkit-home")  # schedules, logs
os.environ["FERKIT_RESUME_DIR"] = os.path.join(_ZENML_HOME, "ferkit-home", "resume")  # never `make test`'s
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
os.environ["AUTO_OPEN_DASHBOARD"] = "false"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ["FERKIT_NO_PROGRESS"] = "1"

from tests.factories import image_tree, write_zip  # noqa: E402 (after the environment is set)


@pytest.fixture
def fer_zip(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "fer2013.zip", image_tree(3))


@pytest.fixture
def real_fer2013() -> Path:
    """The real archive: $FER2013_PATH, else ../shared/data/fer2013.zip; skipped when absent."""
    candidates = [os.environ.get("FER2013_PATH", ""), str(Path(__file__).parents[2] / "shared/data/fer2013.zip")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("FER2013 archive not available (set FER2013_PATH)")
