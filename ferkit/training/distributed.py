"""Data-parallel training under `torch.distributed` (torchrun sets the environment).

Every rank draws the same epoch order and augments the same global batch from the
shared seed, then trains on its own slice of it (a distributed sampler over each
global batch). DistributedDataParallel averages the gradients, and the loss is
normalised by the global batch's weight, so N processes take the same optimizer step
as one process on the whole batch. Rank 0 alone logs, draws progress bars and writes
checkpoints. NCCL on GPUs, gloo on CPUs.

BatchNorm statistics are per rank on CPU (SyncBatchNorm needs a GPU); on GPUs the
model's BatchNorm layers are converted to SyncBatchNorm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

WORLD_SIZE_ENV = "WORLD_SIZE"
LOCAL_RANK_ENV = "LOCAL_RANK"


@dataclass(frozen=True)
class Workers:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, batch: np.ndarray) -> np.ndarray:
        """Positions of this rank's images within a global batch (every world_size-th, from rank)."""
        return np.arange(self.rank, len(batch), self.world_size)


SINGLE = Workers()  # one process, no process group


def current() -> Workers:
    """The process group's rank and size, or a single worker when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return Workers(dist.get_rank(), dist.get_world_size())
    return SINGLE


def init_from_env(device: str = "auto") -> Workers:
    """Join the process group torchrun describes ($WORLD_SIZE > 1); a no-op for one process.

    The backend is NCCL when the device is CUDA, else gloo. Each rank takes the GPU of its
    $LOCAL_RANK.
    """
    world_size = int(os.environ.get(WORLD_SIZE_ENV, "1"))
    if world_size <= 1 or dist.is_initialized():
        return current()
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get(LOCAL_RANK_ENV, "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current()


def wrap(model: nn.Module, workers: Workers) -> nn.Module:
    """The module to run forward passes through: DDP over `model` when distributed, else `model`.

    Build it again whenever the trainable parameters change (a new phase): DDP registers
    its gradient hooks for the parameters that require gradients when it is built.
    """
    if not workers.distributed:
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sync_batchnorm(model: nn.Module, workers: Workers) -> nn.Module:
    """SyncBatchNorm on GPUs when distributed (torch supports it only there); the model unchanged otherwise."""
    device = next(model.parameters()).device
    if workers.distributed and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def sum_across(values: list[float], workers: Workers) -> list[float]:
    """Element-wise sum of `values` over all ranks (the values themselves for one process)."""
    if not workers.distributed:
        return values
    backend_cuda = dist.get_backend() == "nccl"
    tensor = torch.tensor(values, dtype=torch.float64, device="cuda" if backend_cuda else "cpu")
    dist.all_reduce(tensor)
    return tensor.tolist()


def from_main(value: object, workers: Workers) -> object:
    """Rank 0's `value` on every rank, so every rank takes the same decisions (best epoch, early stop)."""
    if not workers.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_shards(shard: torch.Tensor, size: int, workers: Workers) -> torch.Tensor:
    """The rows of a global batch of `size` from every rank's shard (`Workers.shard`: rank r holds
    positions r, r + world, ...), in the global batch's order; the shard itself for one process."""
    if not workers.distributed:
        return shard
    rows = -(-size // workers.world_size)  # the largest shard; the others are padded to it
    padded = torch.zeros((rows, *shard.shape[1:]), dtype=shard.dtype, device=shard.device)
    padded[: len(shard)] = shard
    parts = [torch.empty_like(padded) for _ in range(workers.world_size)]
    dist.all_gather(parts, padded)
    # (world, rows, ...) -> (rows, world, ...): position p is row p // world of rank p % world.
    return torch.stack(parts).transpose(0, 1).reshape(rows * workers.world_size, *shard.shape[1:])[:size]
