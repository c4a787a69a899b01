"""Two registrations finishing together: moving `champion` is a compare-and-set under a lock, so
the better version ends as champion whichever process writes last."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from ferkit.registry import promotion

ROOT = Path(__file__).resolve().parents[2]
NAME = "fer_race"

# One registration's decision: `tracking_uri version score start_after_s barrier_dir`. Reading the
# champion and moving the aliases each take a second more than they would, so the two runs overlap:
# without the lock, the late one re-reads the champion before the early one has moved it, and the
# late writer wins even with the lower score.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import mlflow
    from ferkit.registry import promotion, publish
    from ferkit.registry.decision import Gate

    uri, version, score, start_after, barrier = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), Path(sys.argv[5])
    mlflow.set_tracking_uri(uri)
    read_champion = promotion.champion_score

    def slow_read(*args, **kwargs):
        found = read_champion(*args, **kwargs)
        time.sleep(1.0)
        return found

    promotion.champion_score = slow_read
    move = promotion.move_aliases

    def slow_move(*args, **kwargs):
        time.sleep(1.0)
        move(*args, **kwargs)

    promotion.move_aliases = slow_move
    (barrier / version).touch()
    while len(list(barrier.iterdir())) < 2:
        time.sleep(0.01)
    time.sleep(start_after)
    gate = Gate(registered_model_name="fer_race")
    print(publish.settle(mlflow.MlflowClient(), version, score, gate, "same-split", lambda model: 0.0).alias)
    """
)


def new_version(client: mlflow.MlflowClient, score: float) -> str:
    version = client.create_model_version(NAME, source="file:///nowhere").version
    for key, value in {"test.fingerprint": "same-split", "test.macro_f1": f"{score:.6f}"}.items():
        client.set_model_version_tag(NAME, version, key, value)
    return str(version)


@pytest.mark.parametrize("late", ["worse", "better"])
@pytest.mark.parametrize("existing_champion", [None, 0.55])
def test_the_better_of_two_racing_registrations_ends_as_champion(tmp_path, late, existing_champion):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    if existing_champion is not None:
        client.set_registered_model_alias(NAME, "champion", new_version(client, existing_champion))
    better, worse = new_version(client, 0.60), new_version(client, 0.58)
    script, barrier = tmp_path / "settle.py", tmp_path / "barrier"
    script.write_text(SCRIPT)
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen(
            [sys.executable, str(script), uri, version, str(score), str(0.3 if late == who else 0.0), str(barrier)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for who, version, score in (("better", better, 0.60), ("worse", worse, 0.58))
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    mlflow.set_tracking_uri(uri)
    assert str(promotion.version_by_alias(client, NAME, "champion").version) == better
    if late == "worse":  # it read the champion before the better one moved it, and decided again
        assert str(promotion.version_by_alias(client, NAME, "challenger").version) == worse
        tags = client.get_model_version(NAME, worse).tags
        assert tags["promotion.decision"] == "challenger" and float(tags["promotion.champion_score"]) == 0.60
        assert "decided again: the champion moved to v" in tags["promotion.champion_score_source"]
    else:  # the worse one was champion for a moment; the better one saw that under the lock and beat it
        assert str(promotion.version_by_alias(client, NAME, "previous_champion").version) == worse
        tags = client.get_model_version(NAME, better).tags
        assert tags["promotion.decision"] == "champion" and float(tags["promotion.champion_score"]) == 0.58
    mlflow.set_tracking_uri("")


def test_the_lock_lives_beside_a_local_store_and_not_for_a_remote_one(tmp_path):
    assert promotion.lock_path(f"sqlite:///{tmp_path}/mlflow.db", NAME) == tmp_path / f"mlflow.db.{NAME}.champion.lock"
    assert promotion.lock_path(tmp_path.as_uri(), NAME) == tmp_path / f".{NAME}.champion.lock"
    assert promotion.lock_path("http://mlflow.example:5000", NAME) is None
