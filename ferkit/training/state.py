"""The pieces of state a training keeps, each with one job: the best weights so far, early
stopping, and the resumable state file (timm's CheckpointSaver and train.py's resume, split
the same way)."""

from __future__ import annotations

import hashlib
import pickle
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferkit.files import atomic_write
from ferkit.training.config import TrainConfig


class BestWeights:
    """The weights of the best validation score so far, kept on the CPU."""

    def __init__(self, score: float = -1.0, epoch: int = 0, state: dict[str, torch.Tensor] | None = None):
        self.score, self.epoch, self.state = score, epoch, state

    def offer(self, epoch: int, score: float, module: nn.Module) -> bool:
        """Keep `module`'s weights when `score` beats the best; True when it did."""
        if score <= self.score:
            return False
        self.score, self.epoch = score, epoch
        self.state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        return True


class EarlyStopping:
    """Counts validations without improvement; a phase stops after `patience` of them (None: never)."""

    def __init__(self, patience: int | None, stale: int = 0):
        self.patience, self.stale = patience, stale

    def update(self, improved: bool) -> None:
        self.stale = 0 if improved else self.stale + 1

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.stale >= self.patience


def rng_state(generator: torch.Generator) -> dict:
    """Every random state a resumed run needs, as tensors and plain numbers (loadable with weights_only)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },  # fmt: skip
        "python": {"version": version, "words": list(words), "gauss_next": gauss_next},
    }


def restore_rng(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["pos"], numpy["has_gauss"], numpy["gauss"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["words"]), python["gauss_next"]))


def plain_history(history: list[dict]) -> list[dict[str, float]]:
    """Epoch records as Python numbers (numpy scalars would need unpickling code to load)."""
    return [{key: float(value) for key, value in epoch.items()} for epoch in history]


def save_resume_state(payload: dict, path: Path) -> None:
    """Written beside the target under a unique name, flushed, synced and renamed: an interruption
    (or a crash) at any point leaves the previous state whole."""
    atomic_write(path, lambda file: torch.save(payload, file))


def training_data_key(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    class_weights: Sequence[float] | None,
) -> str:
    """What a training learns from besides its config: its faces, labels and class weights, hashed."""
    digest = hashlib.sha256()
    for array, dtype in ((train_images, np.uint8), (train_labels, np.int64), (val_images, np.uint8),
                         (val_labels, np.int64)):  # fmt: skip
        part = np.ascontiguousarray(array, dtype=dtype)
        digest.update(f"{part.shape}".encode())
        digest.update(memoryview(part).cast("B"))
    digest.update(repr(None if class_weights is None else [float(w) for w in class_weights]).encode())
    return digest.hexdigest()[:20]


def load_resume_state(path: Path, config: TrainConfig, data: str = "") -> dict | None:
    """The saved training state at `path`, or None when there is none; refuses another config's state,
    and one trained on other faces or class weights (`data`: `training_data_key`; a state that
    predates the key is taken on its config alone)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(
            f"{path}: not a resume state this version of ferkit can load safely ({exc}); delete it to start over"
        ) from None
    if state.get("config") != config.fingerprint():
        raise ValueError(
            f"{path}: resume checkpoint belongs to another training config ({state.get('config')} != "
            f"{config.fingerprint()}); delete it to start over"
        )
    if data and state.get("data", data) != data:
        raise ValueError(
            f"{path}: resume checkpoint was trained on other faces, labels or class weights (data {state['data']} "
            f"!= {data}); delete it to start over, or resume with the data it was trained on"
        )
    return state
