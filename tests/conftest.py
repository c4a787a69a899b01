"""Shared fixtures; the data factories live in tests/factories.py."""

from __future__ import annotations

import os
import sys
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
# Under `make test` two test processes share the cores: torch's idle OpenMP threads sleep rather
# than spin, so one process's training does not burn the cycles the other's needs.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tests.factories import image_tree, write_zip  # noqa: E402 (after the environment is set)

_PROJECT = Path(__file__).resolve().parents[1]
# MLflow's default store is ./mlflow.db (and ./mlruns) in the working directory: a test that forgot to
# set its own tracking URI would write there. The user's .ferkit may change beside us (a training
# runs), so it is kept apart by the variables above, not watched.
_NEVER_WRITTEN = ("mlflow.db", "mlruns", ".zen")


@pytest.fixture(scope="session", autouse=True)
def _user_state_is_never_written():
    """Every location tests write is temporary; fail the session if one appeared in the project."""
    existing = {name for name in _NEVER_WRITTEN if (_PROJECT / name).exists()}
    yield
    appeared = sorted(name for name in _NEVER_WRITTEN if (_PROJECT / name).exists() and name not in existing)
    assert not appeared, f"tests wrote user state into the project: {appeared}"


@pytest.fixture(autouse=True)
def _mlflow_store_stays_with_its_test():
    """`mlflow.set_tracking_uri` also sets $MLFLOW_TRACKING_URI, which every subprocess inherits: a
    test that points MLflow at its own store leaves the next test of its worker the store it found
    (a module's fixture's, or none)."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if tracking is not None and getattr(tracking, "_tracking_uri", before) != before:
        sys.modules["mlflow"].set_tracking_uri(before)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture
def fer_zip(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "fer2013.zip", image_tree(3))


def find_real_fer2013() -> Path | None:
    """The real archive: $FER2013_PATH, else ../shared/data/fer2013.zip; None when absent."""
    candidates = [os.environ.get("FER2013_PATH", ""), str(Path(__file__).parents[2] / "shared/data/fer2013.zip")]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture
def real_fer2013() -> Path:
    """The real archive; the test is skipped when there is none."""
    path = find_real_fer2013()
    if path is None:
        pytest.skip("FER2013 archive not available (set FER2013_PATH)")
    return path
