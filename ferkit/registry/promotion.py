"""Champion/challenger aliases in the MLflow registry, mirrored on the ZenML Model Control Plane.

Used by the register and retraining steps and by `ferkit promote` / `rollback` /
`versions`. Aliases move last: a failure anywhere before leaves them where they were.
zenml loads only to mirror a decision onto a ZenML model version.

Moving `champion` is a compare-and-set: whoever moves it holds `champion_lock`, re-reads
the champion inside it and decides again when it changed. Locally the lock is a file
beside the store (SQLite database or file store), so runs on one machine, in any process,
take turns. A remote tracking server (http, databricks, ...) offers no lock: the champion
is still re-read just before the move, which narrows the race but cannot close it; run
registrations against a shared server one at a time (one schedule, or a queue).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ferkit.registry.comparison import rows_from_tags
from ferkit.registry.decision import PromotionDecision, PromotionError
from ferkit.registry.names import (
    CHALLENGER,
    CHAMPION,
    DUPLICATE_OF,
    GATE_PENDING,
    PREVIOUS,
    WEIGHTS_TAG,
    ZENML_VERSION_TAG,
)
from ferkit.registry.store import ModelNotFound

LOCK_TIMEOUT_S = 900  # a registration waits this long for another to finish moving the champion


def lock_path(tracking_uri: str, name: str) -> Path | None:
    """The lock file for moving `name`'s aliases in the store at `tracking_uri`; None for a remote store."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        database = Path(unquote(tracking_uri[len("sqlite:///") :]))  # four slashes: absolute, three: relative
        return database.with_name(f"{database.name}.{name}.champion.lock")
    if parsed.scheme in ("", "file"):
        folder = Path(unquote(parsed.path) if parsed.scheme else tracking_uri or "mlruns")
        return folder / f".{name}.champion.lock"
    return None


@contextmanager
def champion_lock(name: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path | None]:
    """Hold the lock on moving `name`'s champion in the current tracking store (nothing for a remote one)."""
    from filelock import FileLock, Timeout

    path = lock_path(mlflow.get_tracking_uri(), name)
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=timeout):
            yield path
    except Timeout:
        raise PromotionError(
            f"another registration has held {path} for over {timeout:.0f} s; if no ferkit run is active, "
            "delete the file and run again"
        ) from None


def same_version(a: ModelVersion | None, b: ModelVersion | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and str(a.version) == str(b.version))


def version_by_alias(client: mlflow.MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def record_decision(
    client: mlflow.MlflowClient, name: str, version: str, decision: PromotionDecision, source: str
) -> None:
    """Tags on the new version and, inside a run, metrics and params; no alias moves here."""
    tags = {
        "promotion.decision": decision.alias,
        "promotion.reason": decision.reason,
        "promotion.metric": decision.metric,
        "promotion.new_score": f"{decision.new_score:.6f}",
        "promotion.champion_score": "" if decision.champion_score is None else f"{decision.champion_score:.6f}",
        "promotion.compared_with": source,
    }
    comparison = decision.comparison
    if comparison is not None:
        tags.update({"promotion.gain": f"{comparison.gain:.6f}", "promotion.gain_low": f"{comparison.low:.6f}",
                     "promotion.gain_high": f"{comparison.high:.6f}", "promotion.test": comparison.test,
                     "promotion.confidence": f"{comparison.confidence}", "promotion.images": str(comparison.images),
                     "promotion.resamples": str(comparison.resamples)})  # fmt: skip
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if mlflow.active_run() is not None:
        mlflow.log_params({"promotion.decision": decision.alias, "promotion.metric": decision.metric})
        scores = {"promotion.new_score": decision.new_score}
        if decision.champion_score is not None:
            scores["promotion.champion_score"] = decision.champion_score
        if comparison is not None:
            scores.update({"promotion.gain": comparison.gain, "promotion.gain_low": comparison.low,
                           "promotion.gain_high": comparison.high})  # fmt: skip
        mlflow.log_metrics(scores)


def move_aliases(client: mlflow.MlflowClient, name: str, version: str, alias: str) -> None:
    """Give `version` the alias; a new champion sends the old one to `previous_champion`."""
    if alias == CHAMPION:
        old = version_by_alias(client, name, CHAMPION)
        if old is not None and str(old.version) != str(version):
            client.set_registered_model_alias(name, PREVIOUS, old.version)
        challenger = version_by_alias(client, name, CHALLENGER)
        if challenger is not None and str(challenger.version) == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, f"{alias}.since", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def mirror_to_zenml(model_version_id: str | None, alias: str) -> None:
    """ZenML stage for the same decision: champion -> production, challenger -> staging."""
    if not model_version_id:
        return
    from zenml.client import Client

    stage = "production" if alias == CHAMPION else "staging"
    Client().get_model_version(model_version_name_or_number_or_id=model_version_id).set_stage(stage, force=True)


def note_duplicate_in_zenml(model_version_id: str | None, name: str, version: str) -> None:
    """The ZenML model version of a run whose weights were registered already says which version holds them."""
    if not model_version_id:
        return
    from uuid import UUID

    from zenml import log_metadata

    log_metadata(metadata={DUPLICATE_OF: f"{name}/{version}"}, model_version_id=UUID(model_version_id))


def list_versions(name: str, metric: str | None = None) -> list[dict]:
    """Every version of `name`, newest first: aliases, the decision, the gate's figure on val and the
    reported one on test (`metric`, default each version's own `promotion.metric`), its weights hash
    and where it came from."""
    client = mlflow.MlflowClient()
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        raise ModelNotFound(f"no registered model {name!r} in {mlflow.get_tracking_uri()}") from exc
    aliases: dict[str, list[str]] = {}
    for alias, number in (model.aliases or {}).items():  # version searches leave aliases out
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for version in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version)):
        tags = version.tags or {}
        shown = metric or tags.get("promotion.metric") or "macro_f1"
        value, reported = tags.get(f"gate.{shown}"), tags.get(f"test.{shown}")
        rows.append(
            {
                "version": int(version.version),
                "aliases": sorted(aliases.get(str(version.version), [])),
                "metric": shown,
                "score": float(value) if value else None,  # on the gate's images (val): what decided
                "test_score": float(reported) if reported else None,  # on test: reported, never decides
                # unfinished: registered by a run that stopped before its gate moved the aliases
                "decision": "unfinished" if GATE_PENDING in tags else tags.get("promotion.decision", ""),
                "weights_sha256": tags.get(WEIGHTS_TAG, ""),
                "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime(version.creation_timestamp / 1000)),
                "run_id": version.run_id or "",
                "comparison": rows_from_tags(tags),  # a backbone comparison's figures, None elsewhere
            }
        )
    return rows


def promote(name: str, version: str, reason: str = "promoted by hand") -> ModelVersion | None:
    """Make `version` the champion by hand; returns the version it replaced."""
    client = mlflow.MlflowClient()
    try:
        target = client.get_model_version(name, version)
    except MlflowException as exc:
        raise ModelNotFound(f"{name} has no version {version!r}") from exc
    with champion_lock(name):
        old = version_by_alias(client, name, CHAMPION)
        if old is not None and str(old.version) == str(target.version):
            raise PromotionError(f"{name} v{version} is already the champion")
        client.set_model_version_tag(name, target.version, "promotion.reason", reason)
        mirror_to_zenml((target.tags or {}).get(ZENML_VERSION_TAG), CHAMPION)
        move_aliases(client, name, target.version, CHAMPION)
    return old


def rollback(name: str) -> tuple[str, str]:
    """Give `champion` back to the `previous_champion`; returns (demoted, restored) versions."""
    client = mlflow.MlflowClient()
    with champion_lock(name):
        previous = version_by_alias(client, name, PREVIOUS)
        current = version_by_alias(client, name, CHAMPION)
        if previous is None:
            raise PromotionError(f"{name} has no '{PREVIOUS}' alias: nothing to roll back to")
        if current is None:
            raise PromotionError(f"{name} has no champion to roll back")
        client.set_model_version_tag(name, current.version, "promotion.reason", f"rolled back to v{previous.version}")
        mirror_to_zenml((previous.tags or {}).get(ZENML_VERSION_TAG), CHAMPION)
        client.set_registered_model_alias(name, CHAMPION, previous.version)
        client.delete_registered_model_alias(name, PREVIOUS)
    return str(current.version), str(previous.version)
