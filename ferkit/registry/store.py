"""Which MLflow tracking store, and `models:/` URIs resolved to a `TrainedModel`.

`ferkit stack` records the local stack's tracking URI beside ZenML's config, so
commands that only read the registry need not import ZenML (slow, and outside a
project it would create a global ZenML config). mlflow itself loads only when the
read-only SQLite fast path does not apply.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from ferkit.home import zenml_config_path
from ferkit.registry.decision import RegistryError
from ferkit.registry.names import CHAMPION, CHECKPOINT_ARTIFACT

URI_FILE = "ferkit_tracking_uri"  # written by `ferkit stack` beside ZenML's config
MODELS_SCHEME = "models:/"


class ModelNotFound(RegistryError):
    """A model path or URI that does not resolve."""


def uri_file() -> Path:
    """Where `ferkit stack` records the tracking URI: beside ZenML's config in the project's home."""
    return zenml_config_path() / URI_FILE


def recorded_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the URI `ferkit stack` recorded, else ''."""
    recorded = uri_file()
    return os.environ.get("MLFLOW_TRACKING_URI") or (recorded.read_text().strip() if recorded.is_file() else "")


def use_stack_tracking() -> None:
    """Point mlflow at $MLFLOW_TRACKING_URI, else at the URI `ferkit stack` recorded."""
    import mlflow

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return
    recorded = uri_file()
    if not recorded.is_file():
        raise ModelNotFound(
            f"no MLflow tracking store in the project's home ({recorded} is missing): `make train` "
            "sets one up and trains a champion (`make stack` sets up the store alone); or set MLFLOW_TRACKING_URI"
        )
    mlflow.set_tracking_uri(recorded.read_text().strip())


def split_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """'models:/NAME@ALIAS' -> (NAME, ALIAS, None); 'models:/NAME/VERSION' -> (NAME, None, VERSION)."""
    ref = uri[len(MODELS_SCHEME) :]
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, alias, None
    if "/" not in ref:
        raise ModelNotFound(f"'{uri}' names no version: use models:/NAME@ALIAS or models:/NAME/VERSION")
    name, version = ref.rsplit("/", 1)
    return name, None, version


def _local_version(uri: str) -> tuple[sqlite3.Connection, str, int] | None:
    """(read-only connection, name, version) of `uri` in the local SQLite store; None off that layout."""
    tracking = recorded_tracking_uri()
    if not tracking.startswith("sqlite:///"):
        return None
    try:
        name, alias, version = split_model_uri(uri)
        db = sqlite3.connect(f"file:{tracking[len('sqlite:///') :]}?mode=ro", uri=True)
        if alias is not None:
            query = "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?"
            row = db.execute(query, (name, alias)).fetchone()
            if row is None:
                db.close()
                return None
            version = row[0]
        return db, name, int(version)
    except (sqlite3.Error, ValueError, ModelNotFound):
        return None


def local_checkpoint(uri: str) -> Path | None:
    """Fast path for the local stack: resolve `models:/` in MLflow's SQLite store read-only
    and return the checkpoint file in the local artifact store, without importing MLflow
    (it costs seconds of start-up). None whenever anything differs from that layout."""
    found = _local_version(uri)
    if found is None:
        return None
    db, name, version = found
    try:
        row = db.execute(
            "SELECT r.artifact_uri FROM model_versions v JOIN runs r ON r.run_uuid = v.run_id "
            "WHERE v.name = ? AND v.version = ?",
            (name, version),
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    if row is None or not row[0].startswith("file:"):
        return None
    path = Path(unquote(urlparse(row[0]).path)) / CHECKPOINT_ARTIFACT
    return path if path.is_file() else None


def version_tags(uri: str) -> dict[str, str]:
    """The registry tags of the version `uri` names; {} for a file or a version without tags."""
    if not uri.startswith(MODELS_SCHEME):
        return {}
    found = _local_version(uri)
    if found is not None:
        db, name, version = found
        try:
            rows = db.execute(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", (name, version)
            ).fetchall()
            return dict(rows)
        except sqlite3.Error:
            pass
        finally:
            db.close()
    import mlflow

    use_stack_tracking()
    name, alias, number = split_model_uri(uri)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    return dict(version.tags or {})


def registered_tta(uri: str) -> str | None:
    """The TTA mode of the figure the registry gated this version on (`tta.<mode>.<metric>`), if any."""
    parts = version_tags(uri).get("promotion.metric", "").split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "tta" else None


def fetch_checkpoint(run_id: str, what: str):
    """The `TrainedModel` a registered run logged, downloaded through mlflow; `what` names it in errors."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ferkit.models import TrainedModel

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CHECKPOINT_ARTIFACT, dst_path=tmp)
        except (MlflowException, OSError) as exc:
            raise ModelNotFound(
                f"{what}: cannot fetch its checkpoint ({CHECKPOINT_ARTIFACT}): {str(exc).splitlines()[0]}"
            ) from exc
        return TrainedModel.load(local)


def load_trained_model(uri_or_path: str):
    """A ferkit checkpoint file, or a registry URI `models:/NAME@ALIAS` / `models:/NAME/VERSION`."""
    from ferkit.models import TrainedModel

    if Path(uri_or_path).is_file():
        return TrainedModel.load(uri_or_path)
    if not uri_or_path.startswith(MODELS_SCHEME):
        raise ModelNotFound(f"'{uri_or_path}' is neither a checkpoint file nor a models:/ URI")
    local = local_checkpoint(uri_or_path)
    if local is not None:
        return TrainedModel.load(local)
    import mlflow
    from mlflow.exceptions import MlflowException

    use_stack_tracking()
    client = mlflow.MlflowClient()
    name, alias, number = split_model_uri(uri_or_path)
    try:
        version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except (MlflowException, ValueError, OSError) as exc:
        if alias == CHAMPION:
            raise ModelNotFound(
                f"model '{uri_or_path}' does not resolve: {name} has no champion yet; `make train` trains "
                "and registers one (or give --model a checkpoint file)"
            ) from None
        raise ModelNotFound(f"model '{uri_or_path}' does not resolve: {str(exc).splitlines()[0]}") from None
    return fetch_checkpoint(version.run_id, f"model '{uri_or_path}'")
