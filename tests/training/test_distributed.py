"""Data-parallel training: 2 gloo processes take the same steps as one process on the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ferkit.models import TrainedModel
from ferkit.training import TrainConfig, fit, seed_everything
from ferkit.training.distributed import Workers, current, gather_shards
from tests.factories import image_tree, write_zip

ROOT = Path(__file__).parents[2]

# Class weights, repeats, erasing, an EMA and self-distillation (its table gathered from both ranks) all in play; no BatchNorm or dropout (their
# per-rank statistics and masks would differ from one process's by design).
CONFIG = {
    "epochs": 2,
    "batch_size": 16,
    "max_batches_per_epoch": 3,
    "lr": 0.05,
    "early_stopping_patience": None,
    "class_repeats": {"disgust": 2},
    "augment": {"erase": 0.5},
    "ema_decay": 0.9,
    "self_distill": {"alpha": 0.8},
    "device": "cpu",
    "num_threads": 1,
    "tta_flip": False,
}
WEIGHTS = [1.0, 3.0, 1.2, 0.5, 0.9, 1.1, 0.8]


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 7),
    )


def data() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 48, 48), dtype=np.uint8)
    y = np.arange(64) % 7
    return x, y, x[:21], y[:21]


def train(checkpoint: Path | None = None, log: Path | None = None):
    seed_everything(0)
    model = tiny_net()
    callbacks = [lambda epoch, m: log.open("a").write(f"{epoch}\n")] if log else []
    return fit(
        model, *data(), TrainConfig(**CONFIG), class_weights=WEIGHTS, callbacks=callbacks, checkpoint_path=checkpoint
    )


def _worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        folder = Path(out)
        result = train(checkpoint=folder / f"state-{rank}.pt", log=folder / f"log-{rank}.txt")
        torch.save({"weights": result.state_dict, "history": result.history}, folder / f"result-{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(out / "init"), str(out)), nprocs=2, join=True)
    return out


class TestGloo:
    def test_two_processes_match_one_on_the_same_global_batch(self, two_processes):
        single = train()
        both = torch.load(two_processes / "result-0.pt", weights_only=False)
        assert single.state_dict.keys() == both["weights"].keys()
        for name, value in single.state_dict.items():
            torch.testing.assert_close(both["weights"][name], value, rtol=1e-4, atol=1e-5, msg=name)
        for one, two in zip(single.history, both["history"], strict=True):
            assert two["train.loss"] == pytest.approx(one["train.loss"], rel=1e-4)
            assert two["val.macro_f1"] == pytest.approx(one["val.macro_f1"])

    def test_ranks_end_with_identical_weights(self, two_processes):
        a = torch.load(two_processes / "result-0.pt", weights_only=False)["weights"]
        b = torch.load(two_processes / "result-1.pt", weights_only=False)["weights"]
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)

    def test_only_rank_zero_logs_and_writes_checkpoints(self, two_processes):
        assert (two_processes / "log-0.txt").read_text().split() == ["1", "2"]
        assert not (two_processes / "log-1.txt").exists()
        assert (two_processes / "state-0.pt").is_file()
        assert not (two_processes / "state-1.pt").exists()

    def test_each_rank_takes_a_disjoint_slice_of_the_global_batch(self):
        batch = np.arange(10)
        shards = [Workers(rank, 3).shard(batch) for rank in range(3)]
        assert sorted(np.concatenate(shards).tolist()) == list(range(10))
        assert Workers(0, 1).shard(batch).tolist() == list(range(10))

    def test_one_process_gathers_its_own_shard(self):
        shard = torch.arange(14.0).view(2, 7)
        assert gather_shards(shard, 2, Workers(0, 1)) is shard

    def test_without_a_process_group_there_is_one_worker(self):
        assert current() == Workers(0, 1) and current().is_main and not current().distributed


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
    reason="torchrun is not installed beside this Python",
)
def test_ferkit_train_under_torchrun(tmp_path):
    archive = write_zip(tmp_path / "fer.zip", image_tree(4))
    override = {"phases": [], "epochs": 1, "batch_size": 8, "device": "cpu", "num_threads": 1}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "FERKIT_NO_PROGRESS": "1",
    }
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "torchrun"),
            "--nproc-per-node",
            "2",
            "--standalone",
            "-m",
            "ferkit.cli",
            "train",
            "--config",
            str(ROOT / "configs/smoke.yaml"),
            "--data",
            str(archive),
            "--out",
            str(tmp_path / "model.pt"),
            "--override",
            json.dumps(override),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ferkit train: 1 epoch (all epochs), best epoch 1" in proc.stdout and "2 process(es)" in proc.stdout
    epochs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["epoch"] for e in epochs] == [1]  # rank 0 alone reports
    model = TrainedModel.load(tmp_path / "model.pt")
    assert model.build()(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
