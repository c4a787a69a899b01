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

# One registration's decision: `tracking_uri version role barrier_dir`. Files in the barrier folder
# order the two runs, however loaded the machine: the early one takes the lock and holds it until
# the late one has read the champion (and a second more), so the late one always compares with a
# champion that is about to move. Without the lock, the late one would move the aliases on that
# stale comparison and win even with the lower score.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from contextlib import contextmanager
    from pathlib import Path
    import mlflow, numpy as np
    from ferkit.registry import promotion, publish
    from ferkit.registry.decision import Gate

    uri, version, role, barrier = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    labels = np.arange(600) % 7

    def wait_for(name):
        deadline = time.monotonic() + 240
        while not (barrier / name).exists():
            assert time.monotonic() < deadline, f"{role}: no {name} after 240 s"
            time.sleep(0.01)

    def probs_of(model_version):  # a model right on `race.accuracy` of the images
        right = (np.arange(600) * 7919) % 1000 < 1000 * float(model_version.tags["race.accuracy"])
        predicted = np.where(right, labels, (labels + 1) % 7)
        return np.eye(7)[predicted] * 0.9 + 0.1 / 7

    if role == "early":
        lock, move = promotion.champion_lock, promotion.move_aliases

        @contextmanager
        def announced_lock(name):
            with lock(name):
                (barrier / "locked").touch()
                yield

        def late_move(*args, **kwargs):
            wait_for("read")
            deadline = time.monotonic() + 3  # the late run, unlocked, would decide by now
            while time.monotonic() < deadline:
                assert not (barrier / "decided").exists(), "the late run decided while the lock was held"
                time.sleep(0.01)
            move(*args, **kwargs)

        promotion.champion_lock, promotion.move_aliases = announced_lock, late_move
    else:
        read = promotion.version_by_alias

        def announced_read(*args, **kwargs):
            found = read(*args, **kwargs)
            (barrier / "read").touch()
            return found

        record = promotion.record_decision

        def announced_decision(*args, **kwargs):
            record(*args, **kwargs)
            (barrier / "decided").touch()

        promotion.version_by_alias, promotion.record_decision = announced_read, announced_decision
        wait_for("locked")
    on = publish.GateImages(np.zeros((600, 48, 48), np.uint8), labels, "same-split", "val (600 images)")
    mine = probs_of(client.get_model_version("fer_race", version))
    gate = Gate(registered_model_name="fer_race", resamples=300)
    print(publish.settle(client, version, gate, on, mine, probs_of).alias)
    """
)


def new_version(client: mlflow.MlflowClient, accuracy: float) -> str:
    """A version whose model is right on `accuracy` of the gate's images (the script's `probs_of`)."""
    version = client.create_model_version(NAME, source="file:///nowhere").version
    client.set_model_version_tag(NAME, version, "race.accuracy", str(accuracy))
    return str(version)


@pytest.mark.slow
@pytest.mark.parametrize("late", ["worse", "better"])
@pytest.mark.parametrize("existing_champion", [None, 0.40])
def test_the_better_of_two_racing_registrations_ends_as_champion(tmp_path, late, existing_champion):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    if existing_champion is not None:
        client.set_registered_model_alias(NAME, "champion", new_version(client, existing_champion))
    better, worse = new_version(client, 0.80), new_version(client, 0.60)
    script, barrier = tmp_path / "settle.py", tmp_path / "barrier"
    script.write_text(SCRIPT)
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs, logs = [], [tmp_path / "better.log", tmp_path / "worse.log"]
    for (who, version), log in zip((("better", better), ("worse", worse)), logs, strict=True):
        with log.open("w") as out:  # files, not pipes: the early run waits on the late one
            runs.append(subprocess.Popen(
                [sys.executable, str(script), uri, version, "late" if late == who else "early", str(barrier)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    try:
        codes = [run.wait(timeout=300) for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]
    mlflow.set_tracking_uri(uri)
    assert str(promotion.version_by_alias(client, NAME, "champion").version) == better
    if late == "worse":  # it read the champion before the better one moved it, and decided again
        assert str(promotion.version_by_alias(client, NAME, "challenger").version) == worse
        tags = client.get_model_version(NAME, worse).tags
        assert tags["promotion.decision"] == "challenger" and float(tags["promotion.champion_score"]) == pytest.approx(
            0.8, abs=0.02
        )
        assert (
            f"champion v{better}" in tags["promotion.compared_with"]
            and "decided again" in tags["promotion.compared_with"]
        )
    else:  # the worse one was champion for a moment; the better one saw that under the lock and beat it
        assert str(promotion.version_by_alias(client, NAME, "previous_champion").version) == worse
        tags = client.get_model_version(NAME, better).tags
        assert tags["promotion.decision"] == "champion" and float(tags["promotion.champion_score"]) == pytest.approx(
            0.6, abs=0.02
        )
    mlflow.set_tracking_uri("")


def test_the_lock_lives_beside_a_local_store_and_not_for_a_remote_one(tmp_path):
    assert promotion.lock_path(f"sqlite:///{tmp_path}/mlflow.db", NAME) == tmp_path / f"mlflow.db.{NAME}.champion.lock"
    assert promotion.lock_path(tmp_path.as_uri(), NAME) == tmp_path / f".{NAME}.champion.lock"
    assert promotion.lock_path("http://mlflow.example:5000", NAME) is None
