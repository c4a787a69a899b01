"""Plain training and evaluation functions; logging plugs in as callbacks.

The loop knows nothing about MLflow or ZenML: the training step passes a
callback that logs each epoch's metrics wherever it likes. Training runs in
phases (data, not copies of the loop): each names its epochs, optimizer,
learning rate and the parameters it may change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm.auto import tqdm

from ferkit.data.augment import AugmentConfig, augment_batch
from ferkit.data.labels import EMOTIONS
from ferkit.metrics.classification import classification_metrics
from ferkit.models.predict import TTA_MODES, predict_proba, to_input  # noqa: F401 (re-exported)
from ferkit.training import distributed
from ferkit.training.distributed import Workers

EpochCallback = Callable[[int, dict[str, float]], None]
ALL = "all"  # a phase's `trainable` entry meaning every parameter


def _progress_disabled() -> bool:
    """FERKIT_NO_PROGRESS=1 silences the bars (tests, CI logs)."""
    return os.environ.get("FERKIT_NO_PROGRESS") == "1"


class AugmentSettings(BaseModel):
    """YAML face of `AugmentConfig`."""

    model_config = ConfigDict(extra="forbid")

    rotation_deg: float = 15.0  # max absolute rotation in degrees
    shear: float = 0.1  # max absolute shear
    zoom: float = 0.15  # scale drawn from [1 - zoom, 1 + zoom]
    shift: float = 0.1  # max translation as a fraction of the side
    brightness: tuple[float, float] = (0.8, 1.2)  # multiplicative brightness range
    hflip: bool = True  # random horizontal mirror
    strength: float = 1.0  # scales the geometric ranges; 0 turns them off
    erase: float = Field(default=0.0, ge=0.0, le=1.0)  # probability of random erasing per image
    erase_area: tuple[float, float] = (0.02, 0.2)  # erased share of the image, low..high

    @model_validator(mode="after")
    def _check_erase_area(self) -> AugmentSettings:
        low, high = self.erase_area
        if not 0 < low <= high < 1:
            raise ValueError(f"augment.erase_area must satisfy 0 < low <= high < 1, got {self.erase_area}")
        return self

    def to_config(self) -> AugmentConfig:
        return AugmentConfig(**self.model_dump())


class Phase(BaseModel):
    """One stage of training: how long, how fast, and which parameters may change."""

    model_config = ConfigDict(extra="forbid")

    name: str  # shown in logs and metric names
    epochs: int = Field(ge=1)  # passes over the training split in this phase
    lr: float = Field(gt=0)  # peak learning rate
    optimizer: Literal["sgd", "adamw"] = "adamw"  # SGD with Nesterov momentum, or AdamW
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"  # decay over this phase's steps
    weight_decay: float | None = Field(None, ge=0)  # None: the config's weight_decay
    trainable: list[str] = Field(default_factory=lambda: [ALL])  # parameter-name prefixes, or "all"


class TrainConfig(BaseModel):
    """Everything the loop needs; configs/*.yaml set these under the train step."""

    model_config = ConfigDict(extra="forbid")

    architecture: str = "plain_cnn"  # name in ferkit.models' registry
    architecture_kwargs: dict = Field(default_factory=dict)  # builder keyword arguments
    phases: list[Phase] = Field(default_factory=list)  # empty: one phase from epochs/optimizer/lr below
    epochs: int = Field(30, ge=1)  # single-phase runs: passes over the training split
    optimizer: Literal["sgd", "adamw"] = "sgd"  # single-phase runs: SGD+Nesterov one-cycle, or AdamW cosine
    lr: float = Field(0.05, gt=0)  # single-phase runs: peak learning rate
    batch_size: int = Field(128, ge=1)  # images per optimizer step
    weight_decay: float = Field(5e-4, ge=0)  # decoupled for AdamW, L2 for SGD
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # cross-entropy label smoothing
    use_class_weights: bool = True  # weight the loss by the class-weights step's output
    class_repeats: dict[str, int] = Field(default_factory=dict)  # emotion -> augmented copies per epoch
    augment: AugmentSettings = Field(default_factory=AugmentSettings)  # batched augmentation
    tta_flip: bool = True  # average predictions over the image and its mirror at evaluation
    ema_decay: float | None = Field(None, gt=0, lt=1)  # evaluate and keep an exponential moving average
    early_stopping_patience: int | None = Field(10, ge=1)  # validations without improvement end a phase
    validate_every: int = Field(1, ge=1)  # score val every n-th epoch (and always a phase's last epoch)
    max_batches_per_epoch: int | None = Field(None, ge=1)  # cap for smoke runs; None = whole split
    eval_batch_size: int = Field(512, ge=1)  # images per forward pass when predicting
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast (CPUs with AVX512-BF16/AMX, GPUs)
    channels_last: bool = False  # NHWC memory format, faster convolutions on CPU and GPU
    seed: int = 0  # seeds python, numpy and torch
    num_threads: int | None = Field(None, ge=1)  # torch intra-op threads; None = all cores

    @field_validator("class_repeats")
    @classmethod
    def _known_emotions(cls, value: dict[str, int]) -> dict[str, int]:
        for emotion, copies in value.items():
            if emotion not in EMOTIONS:
                raise ValueError(f"class_repeats: unknown emotion {emotion!r}; expected one of {EMOTIONS}")
            if copies < 1:
                raise ValueError(f"class_repeats: {emotion} has {copies} copies; at least 1")
        return value

    def resolved_phases(self) -> list[Phase]:
        if self.phases:
            return list(self.phases)
        schedule = "onecycle" if self.optimizer == "sgd" else "cosine"
        return [Phase(name="train", epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, schedule=schedule)]

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.resolved_phases())

    def fingerprint(self) -> str:
        """Hash of everything that shapes the result; a resume checkpoint must match it."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class FitResult:
    state_dict: dict[str, torch.Tensor]  # weights of the best validation epoch
    best_epoch: int  # 1-based, counted over all phases
    best_val_macro_f1: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # training time, including time before a resume


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --- phases: which parameters train --------------------------------------------------------------


def set_trainable(model: nn.Module, prefixes: Sequence[str], phase: str = "") -> list[nn.Parameter]:
    """Freeze every parameter except those under `prefixes`; returns the trainable ones.

    A prefix matches a parameter name exactly or up to a dot (`backbone.layer4` matches
    `backbone.layer4.0.conv1.weight`, not `backbone.layer40`). A prefix that matches
    nothing is an error, so a typo cannot silently freeze a phase.
    """
    names = [name for name, _ in model.named_parameters()]
    if ALL not in prefixes:
        for prefix in prefixes:
            if not any(n == prefix or n.startswith(prefix + ".") for n in names):
                top = sorted({n.split(".")[0] for n in names})
                raise ValueError(f"phase {phase!r}: trainable {prefix!r} matches no parameter; modules: {top}")
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(ALL in prefixes or any(name == p or name.startswith(p + ".") for p in prefixes))
        if param.requires_grad:
            trainable.append(param)
    return trainable


def freeze_frozen_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers whose parameters are frozen stay in eval mode: running statistics untouched."""
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def make_optimizer(
    params: list[nn.Parameter], phase: Phase, weight_decay: float, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    wd = phase.weight_decay if phase.weight_decay is not None else weight_decay
    if phase.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=phase.lr, momentum=0.9, nesterov=True, weight_decay=wd)
    else:
        optimizer = torch.optim.AdamW(params, lr=phase.lr, weight_decay=wd)
    steps = max(steps, 1)
    if phase.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=phase.lr, total_steps=steps)
    elif phase.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return optimizer, scheduler


# --- one epoch ------------------------------------------------------------------------------------


def epoch_order(labels: np.ndarray, repeats: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Shuffled indices with each image of class k present `repeats[k]` times."""
    index = np.repeat(np.arange(len(labels)), repeats[labels])
    return index[torch.randperm(len(index), generator=generator).numpy()]


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    config: TrainConfig,
    class_weights: torch.Tensor | None,
    generator: torch.Generator,
    desc: str,
    repeats: np.ndarray | None = None,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
    net: nn.Module | None = None,
    workers: Workers = distributed.SINGLE,
) -> dict[str, float]:
    """One pass over shuffled, augmented training images; returns loss, accuracy and data-wait share.

    `net` is what forward passes go through (DDP over `model` when distributed). Every rank
    augments the whole global batch from the shared generator and trains on its slice; the
    loss is normalised by the global batch's total weight, so the averaged gradient equals
    one process's on the whole batch. The returned figures are summed over ranks.
    """
    net = net if net is not None else model
    model.train()
    freeze_frozen_batchnorm(model)
    device = next(model.parameters()).device
    augment = config.augment.to_config()
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    order = epoch_order(labels, repeats if repeats is not None else np.ones(len(EMOTIONS), int), generator)
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    if config.max_batches_per_epoch is not None:
        batches = batches[: config.max_batches_per_epoch]
    if workers.distributed:  # a global batch smaller than the world would leave a rank without images
        batches = [b for b in batches if len(b) >= workers.world_size]
    regularization = getattr(model, "regularization", None)
    loss_sum, correct, seen, data_seconds = 0.0, 0, 0, 0.0
    start = time.perf_counter()
    bar = tqdm(batches, desc=desc, unit="batch", leave=False, mininterval=2.0,
               disable=_progress_disabled() or not workers.is_main)
    for idx in bar:
        data_start = time.perf_counter()
        x = augment_batch(to_input(images[idx]).to(device), augment, generator)  # (B, 1, 48, 48)
        y = torch.as_tensor(labels[idx]).to(device, non_blocking=True)
        # The denominator of the weighted mean over the *global* batch (what F.cross_entropy divides by).
        total_weight = class_weights[y].sum() if class_weights is not None else torch.tensor(float(len(idx)))
        if workers.distributed:
            mine = torch.as_tensor(workers.shard(idx), device=device)
            x, y = x[mine], y[mine]
        x = x.contiguous(memory_format=memory_format)
        data_seconds += time.perf_counter() - data_start
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            logits = net(x)
        per_image = F.cross_entropy(logits.float(), y, weight=class_weights, reduction="none",
                                    label_smoothing=config.label_smoothing)
        loss = per_image.sum() / total_weight * workers.world_size  # DDP divides by the world size
        if regularization is not None:
            loss = loss + regularization()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.item() / workers.world_size * len(idx)
        correct += int((logits.argmax(dim=1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    total = time.perf_counter() - start
    loss_sum, correct, seen = distributed.sum_across([loss_sum, float(correct), float(seen)], workers)
    return {
        "train.loss": loss_sum / max(seen, 1),
        "train.accuracy": correct / max(seen, 1),
        "train.images_per_second": seen / max(total, 1e-9),
        "train.data_wait_share": data_seconds / max(total, 1e-9),
    }


def ema_update(decay: float) -> Callable:
    """EMA of floating tensors; integer buffers (BatchNorm counters, index tables) are copied, never averaged.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so early epochs are
    not dominated by the random initial weights (a plain 0.999 EMA still carries 40% of them
    after 900 steps, which would also mislead best-epoch selection and early stopping).
    torch's own EMA function averages integer buffers in float and truncates them back.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if averaged[0].is_floating_point():  # torch groups the tensors by dtype
            n = float(n_averaged)
            torch._foreach_lerp_(averaged, current, 1 - min(decay, (1 + n) / (10 + n)))
        else:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


# --- resumable state ------------------------------------------------------------------------------


def _save_atomic(payload: dict, path: Path) -> None:
    """Write next to the target and rename, so an interruption never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _rng_state(generator: torch.Generator) -> dict:
    return {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _restore_rng(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def load_resume_state(path: Path, config: TrainConfig) -> dict | None:
    """The saved training state at `path`, or None when there is none; refuses another config's state."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: holds RNG states
    if state.get("config") != config.fingerprint():
        raise ValueError(
            f"{path}: resume checkpoint belongs to another training config ({state.get('config')} != "
            f"{config.fingerprint()}); delete it to start over"
        )
    return state


# --- the whole run --------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig,
    class_weights: Sequence[float] | None = None,
    callbacks: Sequence[EpochCallback] = (),
    checkpoint_path: str | Path | None = None,
) -> FitResult:
    """Train through the config's phases, keep the weights of the best validation macro-F1.

    Early stopping watches the same figure and ends the current phase. The test split
    never enters here. With `checkpoint_path`, the full state is saved after every epoch
    and a run started again with the same config resumes where it stopped and ends with
    the same weights as an uninterrupted run.

    Inside an initialised process group (torchrun, see `ferkit.training.distributed`) each
    rank trains on its slice of every global batch; only rank 0 calls the callbacks and
    writes the checkpoint.
    """
    workers = distributed.current()
    if len(train_images) == 0:
        raise ValueError("the training split is empty")
    if len(val_images) == 0:
        raise ValueError("the validation split is empty; best-epoch selection needs it")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    model.to(device)
    model = distributed.sync_batchnorm(model, workers)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    repeats = np.ones(len(EMOTIONS), dtype=np.int64)
    for emotion, copies in config.class_repeats.items():
        repeats[EMOTIONS.index(emotion)] = copies
    weights = None
    if config.use_class_weights and class_weights is not None:
        weights = torch.tensor(list(class_weights), dtype=torch.float32)
        if weights.shape != (len(EMOTIONS),):
            raise ValueError(f"class_weights must have {len(EMOTIONS)} entries, got {tuple(weights.shape)}")
        # Repeated classes already appear `r` times per epoch: keep their total loss mass balanced.
        weights = (weights / torch.as_tensor(repeats, dtype=torch.float32)).to(device)

    # uint8 images live on the device once (66 MB for FER2013): batches are gathered there, not copied per step.
    train_images = torch.from_numpy(np.ascontiguousarray(train_images)).to(device)
    images_per_epoch = int(repeats[train_labels].sum())
    steps_per_epoch = -(-images_per_epoch // config.batch_size)
    if config.max_batches_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_batches_per_epoch)
    phases = config.resolved_phases()
    total_epochs = config.total_epochs
    ema = None
    if config.ema_decay is not None:
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_update(config.ema_decay), use_buffers=True)

    checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
    state = None
    if checkpoint is not None:  # rank 0 reads it and hands it on: other nodes need not see the file
        state = distributed.from_main(load_resume_state(checkpoint, config) if workers.is_main else None, workers)
    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_state = -1.0, 0, None
    start_phase, start_epoch, elapsed = 0, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history, best_f1, best_epoch, best_state = state["history"], state["best_f1"], state["best_epoch"], state["best"]
        start_phase, start_epoch, elapsed = state["phase"], state["epoch_in_phase"], state["seconds"]
        _restore_rng(state["rng"], generator)
        for past in history if workers.is_main else []:  # a resumed run reports its whole history
            for callback in callbacks:
                callback(int(past["epoch"]), {k: v for k, v in past.items() if k != "epoch"})

    start = time.perf_counter()
    bar = tqdm(total=total_epochs, initial=len(history), desc="training", unit="epoch",
               disable=_progress_disabled() or not workers.is_main)
    for phase_index in range(start_phase, len(phases)):
        phase = phases[phase_index]
        params = set_trainable(model, phase.trainable, phase.name)
        net = distributed.wrap(model, workers)  # per phase: DDP hooks the parameters trainable now
        optimizer, scheduler = make_optimizer(params, phase, config.weight_decay, phase.epochs * steps_per_epoch)
        first_epoch, stale = 0, 0
        if state is not None and phase_index == start_phase and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            first_epoch, stale = start_epoch, state["stale"]
        for epoch_in_phase in range(first_epoch, phase.epochs):
            epoch = len(history) + 1
            epoch_start = time.perf_counter()
            desc = f"{phase.name} {epoch_in_phase + 1}/{phase.epochs}"
            metrics = train_one_epoch(model, optimizer, scheduler, train_images, train_labels, config, weights,
                                      generator, desc, repeats, ema, net, workers)
            scored = ema.module if ema is not None else model
            last_of_phase = epoch_in_phase + 1 == phase.epochs
            validate = last_of_phase or epoch % config.validate_every == 0
            val = {}
            if validate:
                probs = predict_proba(scored, val_images, config.eval_batch_size, tta_flip=config.tta_flip,
                                      bf16=config.precision == "bf16")
                val = distributed.from_main(classification_metrics(val_labels, probs), workers)
            metrics.update({f"val.{k}": v for k, v in val.items()})
            metrics["train.lr"] = scheduler.get_last_lr()[0]
            metrics["train.phase"] = float(phase_index)
            metrics["train.trainable_parameters"] = float(sum(p.numel() for p in params))
            metrics["train.epoch_seconds"] = time.perf_counter() - epoch_start
            history.append({"epoch": epoch, **metrics})
            # An epoch left unscored neither moves the checkpoint choice nor counts towards early stopping.
            if validate and val["macro_f1"] > best_f1:
                best_f1, best_epoch, stale = val["macro_f1"], epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
            elif validate:
                stale += 1
            stop_phase = config.early_stopping_patience is not None and stale >= config.early_stopping_patience
            if checkpoint is not None and workers.is_main:
                done = stop_phase or epoch_in_phase + 1 == phase.epochs
                _save_atomic({
                    "config": config.fingerprint(),
                    "phase": phase_index + 1 if done else phase_index,
                    "epoch_in_phase": 0 if done else epoch_in_phase + 1,
                    "stale": stale,
                    "model": model.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "optimizer": None if done else optimizer.state_dict(),  # a new phase builds its own
                    "scheduler": None if done else scheduler.state_dict(),
                    "history": history,
                    "best": best_state,
                    "best_f1": best_f1,
                    "best_epoch": best_epoch,
                    "seconds": elapsed + time.perf_counter() - start,
                    "rng": _rng_state(generator),
                }, checkpoint)
            bar.update(1)
            bar.set_postfix(phase=phase.name, val_f1=f"{val['macro_f1']:.3f}" if val else "-", best=best_epoch)
            for callback in callbacks if workers.is_main else []:
                callback(epoch, metrics)
            if stop_phase:
                break
        state = None
    bar.close()
    return FitResult(
        state_dict=copy.deepcopy(best_state),
        best_epoch=best_epoch,
        best_val_macro_f1=best_f1,
        history=history,
        seconds=elapsed + time.perf_counter() - start,
    )
