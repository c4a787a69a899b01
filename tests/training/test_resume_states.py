"""Resume states belong to their run: trainings sharing a folder never erase each other's, a kill
or a crash mid-write leaves the last good state, and a state loads without running any code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ferkit.models import build_model
from ferkit.training import Phase, TrainConfig, fit, seed_everything
from ferkit.training import state as state_module
from ferkit.training.state import load_resume_state
from ferkit.training.train import remove_abandoned_states, remove_resume_states, train_resumable
from tests.factories import TINY_HYBRID
from tests.training.test_training import two_class_faces

ROOT = Path(__file__).resolve().parents[2]

# One training, run as its own process: `seed resume_dir kill_at out`. It kills itself (SIGKILL, no
# clean-up of any kind) right after epoch `kill_at` was saved; 0 runs to the end and saves the weights.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np, torch
    from ferkit.data.dataset import FERDataset
    from ferkit.training import Phase, TrainConfig
    from ferkit.training.train import train_resumable
    from tests.training.test_training import two_class_faces

    seed, resume_dir, kill_at, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    x, y = two_class_faces(48, seed=0)
    data = FERDataset(np.concatenate([x, x[:16]]), np.concatenate([y, y[:16]]), np.array([0] * 48 + [1] * 16),
                      [f"f{i}" for i in range(64)])
    config = TrainConfig(architecture="plain_cnn", architecture_kwargs={"widths": [4, 4, 8, 8]}, batch_size=16,
                         early_stopping_patience=None, use_class_weights=False, num_threads=1, tta_flip=False,
                         seed=seed, phases=[Phase(name="a", epochs=2, lr=3e-3), Phase(name="b", epochs=2, lr=1e-3)])

    def kill(epoch, metrics):
        if epoch == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    if os.environ.get("KILL_IN_WRITE"):  # killed half way through writing the state of that epoch
        import ferkit.training.state as state
        real_save, saves = torch.save, []

        def save_and_die(payload, file):
            saves.append(1)
            if len(saves) == int(os.environ["KILL_IN_WRITE"]):
                real_save(payload, file)
                file.truncate(file.tell() // 2)
                file.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            real_save(payload, file)

        state.torch.save = save_and_die

    training = train_resumable(config, data, [1.0] * 7, resume_dir, callbacks=[kill])
    torch.save(training.model.state_dict, out)
    """
)


def run_training(
    tmp_path: Path, seed: int, resume_dir: Path, kill_at: int, out: str = "", kill_in_write: int = 0
) -> int:
    script = tmp_path / "train_once.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERKIT_NO_PROGRESS": "1"}
    if kill_in_write:
        env["KILL_IN_WRITE"] = str(kill_in_write)
    args = [sys.executable, str(script), str(seed), str(resume_dir), str(kill_at), out or str(tmp_path / "unused.pt")]
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, timeout=600).returncode


def states(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("train-*.pt"))


@pytest.mark.slow
def test_two_trainings_killed_in_one_folder_both_resume_to_their_uninterrupted_weights(tmp_path):
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    for seed in (0, 1):  # the reference: each training uninterrupted, in a folder of its own
        assert run_training(tmp_path, seed, alone / str(seed), 0, str(tmp_path / f"reference{seed}.pt")) == 0

    assert run_training(tmp_path, 0, shared, 2) == -signal.SIGKILL
    first = states(shared)
    assert len(first) == 1
    assert run_training(tmp_path, 1, shared, 3) == -signal.SIGKILL
    both = states(shared)
    assert len(both) == 2 and set(first) < set(both)  # starting the second kept the first's state

    for seed in (0, 1):
        assert run_training(tmp_path, seed, shared, 0, str(tmp_path / f"resumed{seed}.pt")) == 0
        assert states(shared) == both  # finished states stay; neither run removed the other's
        reference = torch.load(tmp_path / f"reference{seed}.pt", weights_only=True)
        resumed = torch.load(tmp_path / f"resumed{seed}.pt", weights_only=True)
        for key, value in reference.items():
            torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)
    assert not list(shared.glob(".*.tmp"))


@pytest.mark.slow
def test_a_kill_in_the_middle_of_a_write_leaves_the_last_state_and_the_rerun_finishes(tmp_path):
    folder = tmp_path / "resume"
    assert run_training(tmp_path, 0, tmp_path / "alone", 0, str(tmp_path / "reference.pt")) == 0
    assert run_training(tmp_path, 0, folder, 0, kill_in_write=3) == -signal.SIGKILL  # dies writing epoch 3
    [state] = folder.glob("train-*.pt")
    assert len(torch.load(state, weights_only=True)["history"]) == 2  # epoch 2's state, whole
    assert len(list(folder.glob(".train-*.tmp"))) == 1  # the half-written file the kill left
    assert run_training(tmp_path, 0, folder, 0, str(tmp_path / "resumed.pt")) == 0
    assert not list(folder.glob(".train-*.tmp"))  # cleared when the training started again
    reference = torch.load(tmp_path / "reference.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    for key, value in reference.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)


def _config(**overrides) -> TrainConfig:
    phases = [Phase(name="a", epochs=3, lr=3e-3)]
    return TrainConfig(architecture="hybrid", architecture_kwargs=TINY_HYBRID, batch_size=16, num_threads=2,
                       early_stopping_patience=None, use_class_weights=False, tta_flip=False, phases=phases,
                       **overrides)  # fmt: skip


def _fit(config: TrainConfig, checkpoint: Path, interrupt_after: int, data_seed: int = 0, weights=None):
    def stop(epoch, metrics):
        if epoch == interrupt_after:
            raise KeyboardInterrupt

    x, y = two_class_faces(32, seed=data_seed)
    seed_everything(config.seed)
    return fit(build_model(config.architecture, **config.architecture_kwargs), x, y, x, y, config,
               class_weights=weights, callbacks=[stop], checkpoint_path=checkpoint)  # fmt: skip


def test_a_state_trained_on_other_faces_or_weights_is_refused(tmp_path):
    """`ferkit train --resume FILE` names the state itself: a smoke run's finished state must not
    pass for the full run's training (the config alone cannot tell them apart)."""
    config, checkpoint = _config(), tmp_path / "state.pt"
    finished = _fit(config, checkpoint, interrupt_after=99)  # all 3 epochs: a finished state
    for other in ({"data_seed": 1}, {"weights": [1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]}):
        with pytest.raises(ValueError, match="state.pt: resume checkpoint was trained on other faces, labels or "
                                             "class weights"):  # fmt: skip
            _fit(config, checkpoint, interrupt_after=99, **other)
    again = _fit(config, checkpoint, interrupt_after=99)  # the same faces and weights: resumed (nothing left)
    assert again.history == finished.history
    for key, value in finished.state_dict.items():
        torch.testing.assert_close(again.state_dict[key], value, rtol=0, atol=0)

    legacy = torch.load(checkpoint, map_location="cpu", weights_only=True)
    del legacy["data"]  # a state written before the key existed: taken on its config, as then
    torch.save(legacy, checkpoint)
    assert load_resume_state(checkpoint, config, data="0" * 20)["history"] == legacy["history"]


def test_a_crash_in_the_middle_of_a_write_leaves_the_last_good_state(tmp_path, monkeypatch):
    config, checkpoint = _config(), tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(config, checkpoint, interrupt_after=1)
    assert len(load_resume_state(checkpoint, config)["history"]) == 1

    real_save = torch.save

    def dies_half_way(payload, file):
        real_save(payload, file)
        file.truncate(file.tell() // 2)
        raise OSError("No space left on device")

    monkeypatch.setattr(state_module.torch, "save", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        _fit(config, checkpoint, interrupt_after=99)  # resumes at epoch 2, dies writing it
    monkeypatch.undo()
    assert len(load_resume_state(checkpoint, config)["history"]) == 1  # epoch 1's state, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no half-written file beside it


def test_a_resume_state_is_plain_data_and_code_in_one_is_refused(tmp_path):
    config, checkpoint = _config(ema_decay=0.9), tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(config, checkpoint, interrupt_after=2)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)  # RNG states, history: all plain
    assert state["config"] == config.fingerprint() and len(state["history"]) == 2

    state["payload"] = Path("/")  # any object that needs code to rebuild
    torch.save(state, checkpoint)
    with pytest.raises(ValueError, match="state.pt: not a resume state this version of ferkit can load safely"):
        load_resume_state(checkpoint, config)


def test_a_training_removes_only_its_own_config_states(tmp_path):
    mine, other = _config(seed=0), _config(seed=1)
    names = [f"train-{mine.fingerprint()}-aaaa.pt", f"train-{mine.fingerprint()}-bbbb.pt",
             f"train-{other.fingerprint()}-aaaa.pt", "train-0123456789abcdef0123.pt"]  # fmt: skip
    for name in names:
        (tmp_path / name).write_bytes(b"state")
    (tmp_path / f".train-{mine.fingerprint()}-aaaa.pt.x1.tmp").write_bytes(b"half")
    (tmp_path / f".train-{other.fingerprint()}-aaaa.pt.x2.tmp").write_bytes(b"another's, being written")
    removed = remove_resume_states(tmp_path, mine, keep=tmp_path / names[1])
    assert [p.name for p in removed] == [f".train-{mine.fingerprint()}-aaaa.pt.x1.tmp", names[0]]
    assert (tmp_path / f".train-{other.fingerprint()}-aaaa.pt.x2.tmp").exists()
    assert states(tmp_path) == sorted(names[1:])


def test_states_untouched_for_a_month_go_and_live_ones_stay(tmp_path, capsys):
    import time

    import numpy as np

    from ferkit.data.dataset import FERDataset

    now, day = time.time(), 86400
    ages = {"train-old-config-aaaa.pt": 31, ".train-old-config-aaaa.pt.x1.tmp": 40, "train-recent-bbbb.pt": 29,
            ".train-live-cccc.pt.x2.tmp": 0, "train-kept-dddd.pt": 90, "notes.txt": 365}  # fmt: skip
    for name, age in ages.items():
        (tmp_path / name).write_bytes(b"state")
        os.utime(tmp_path / name, (now - age * day, now - age * day))
    removed = remove_abandoned_states(tmp_path, keep=tmp_path / "train-kept-dddd.pt", now=now)
    assert [p.name for p in removed] == [".train-old-config-aaaa.pt.x1.tmp", "train-old-config-aaaa.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".train-live-cccc.pt.x2.tmp", "notes.txt", "train-kept-dddd.pt", "train-recent-bbbb.pt"]
    )

    # A training starting in the folder clears them out, and says so; its own state stays.
    old = tmp_path / "train-kept-dddd.pt"
    x, y = two_class_faces(32, seed=0)
    data = FERDataset(np.concatenate([x, x[:8]]), np.concatenate([y, y[:8]]), np.array([0] * 32 + [1] * 8),
                      [f"f{i}" for i in range(40)])  # fmt: skip
    config = TrainConfig(architecture="plain_cnn", architecture_kwargs={"widths": [4, 4, 8, 8]}, batch_size=16,
                         epochs=1, use_class_weights=False, tta_flip=False, num_threads=2)  # fmt: skip
    train_resumable(config, data, [1.0] * 7, tmp_path)
    assert "removed 1 resume file(s) untouched for 30 days" in capsys.readouterr().out and not old.exists()
    assert len([p for p in tmp_path.glob(f"train-{config.fingerprint()}-*.pt")]) == 1
    assert (tmp_path / "train-recent-bbbb.pt").exists() and (tmp_path / ".train-live-cccc.pt.x2.tmp").exists()


def test_a_second_run_of_a_live_training_is_refused_and_touches_nothing(tmp_path):
    """A scheduled run beside `make train` (the same config, faces and weights) would write the same
    resume state in turn with it; one of another config or data starting meanwhile would delete it."""
    import numpy as np
    from filelock import FileLock

    from ferkit.data.dataset import FERDataset
    from ferkit.training.train import lock_of, resume_path

    x, y = two_class_faces(32, seed=0)
    data = FERDataset(np.concatenate([x, x[:8]]), np.concatenate([y, y[:8]]), np.array([0] * 32 + [1] * 8),
                      [f"f{i}" for i in range(40)])  # fmt: skip
    config, weights = _config(), [1.0] * 7
    live = resume_path(tmp_path, config, data, weights)
    writing = live.with_name(f".{live.name}.k3j2h1gf.tmp")  # the live run's epoch being written
    older = tmp_path / f"train-{config.fingerprint()}-{'0' * 20}.pt"  # this config on other data, not running
    for path in (live, writing, older):
        path.write_bytes(b"state")

    with FileLock(str(lock_of(live)), timeout=0):  # the live training (another process's lock, in effect)
        with pytest.raises(RuntimeError, match="another training of the same config, data and class weights"):
            train_resumable(config, data, weights, tmp_path)
        assert live.read_bytes() == b"state" and writing.exists() and older.exists()  # refused before any clean-up
        assert remove_resume_states(tmp_path, config) == [older]  # `make train FRESH=1` beside it: its files stay
        assert live.exists() and writing.exists()

    live.unlink()  # its bytes are no state; the live run's leftovers below are this run's to clear
    training = train_resumable(config, data, weights, tmp_path)  # once that run ended, this one trains
    assert training.result.epochs_trained == 3 and not writing.exists() and live.exists()
