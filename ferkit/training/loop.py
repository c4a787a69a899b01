"""Plain training and evaluation functions; logging plugs in as callbacks.

The loop knows nothing about MLflow or ZenML: the training step passes a
callback that logs each epoch's metrics wherever it likes.
"""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm.auto import tqdm

from ferkit.data.augment import AugmentConfig, augment_batch
from ferkit.data.labels import EMOTIONS
from ferkit.metrics.classification import classification_metrics
from ferkit.models.predict import TTA_MODES, predict_proba, to_input  # noqa: F401 (re-exported)

EpochCallback = Callable[[int, dict[str, float]], None]


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

    def to_config(self) -> AugmentConfig:
        return AugmentConfig(**self.model_dump())


class TrainConfig(BaseModel):
    """Everything the loop needs; configs/*.yaml set these under the train step."""

    model_config = ConfigDict(extra="forbid")

    architecture: str = "plain_cnn"  # name in ferkit.models' registry
    architecture_kwargs: dict = Field(default_factory=dict)  # builder keyword arguments
    epochs: int = Field(30, ge=1)  # passes over the training split
    batch_size: int = Field(128, ge=1)  # images per optimizer step
    optimizer: Literal["sgd", "adamw"] = "sgd"  # SGD+Nesterov with one-cycle, or AdamW with cosine
    lr: float = Field(0.05, gt=0)  # peak learning rate
    weight_decay: float = Field(5e-4, ge=0)  # decoupled for AdamW, L2 for SGD
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # cross-entropy label smoothing
    use_class_weights: bool = True  # weight the loss by the class-weights step's output
    augment: AugmentSettings = Field(default_factory=AugmentSettings)  # batched augmentation
    tta_flip: bool = True  # average predictions over the image and its mirror at evaluation
    early_stopping_patience: int | None = Field(10, ge=1)  # epochs without val improvement; None = off
    max_batches_per_epoch: int | None = Field(None, ge=1)  # cap for smoke runs; None = whole split
    eval_batch_size: int = Field(512, ge=1)  # images per forward pass when predicting
    seed: int = 0  # seeds python, numpy and torch
    num_threads: int | None = Field(None, ge=1)  # torch intra-op threads; None = all cores


@dataclass
class FitResult:
    state_dict: dict[str, torch.Tensor]  # weights of the best validation epoch
    best_epoch: int  # 1-based
    best_val_macro_f1: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    class_weights: torch.Tensor | None,
    generator: torch.Generator,
    epoch: int,
) -> dict[str, float]:
    """One pass over shuffled training images; returns mean loss and accuracy."""
    model.train()
    augment = config.augment.to_config()
    order = torch.randperm(len(images), generator=generator).numpy()
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    if config.max_batches_per_epoch is not None:
        batches = batches[: config.max_batches_per_epoch]
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False, mininterval=2.0,
               disable=_progress_disabled())
    for idx in bar:
        x = augment_batch(to_input(images[idx]), augment, generator)  # (B, 1, 48, 48)
        y = torch.as_tensor(labels[idx])
        logits = model(x)
        loss = F.cross_entropy(logits, y, weight=class_weights, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item() * len(idx)
        correct += int((logits.argmax(dim=1) == y).sum())
        seen += len(idx)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"train.loss": loss_sum / max(seen, 1), "train.accuracy": correct / max(seen, 1)}


def _optimizer_and_schedule(model: nn.Module, config: TrainConfig, steps_per_epoch: int):
    total_steps = max(config.epochs * steps_per_epoch, 1)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return optimizer, scheduler


def fit(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig,
    class_weights: Sequence[float] | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> FitResult:
    """Train for `config.epochs`, keep the weights of the best validation macro-F1.

    Early stopping watches the same figure. The test split never enters here.
    """
    if len(train_images) == 0:
        raise ValueError("the training split is empty")
    if len(val_images) == 0:
        raise ValueError("the validation split is empty; best-epoch selection needs it")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    generator = seed_everything(config.seed)
    weights = None
    if config.use_class_weights and class_weights is not None:
        weights = torch.tensor(list(class_weights), dtype=torch.float32)
        if weights.shape != (len(EMOTIONS),):
            raise ValueError(f"class_weights must have {len(EMOTIONS)} entries, got {tuple(weights.shape)}")

    steps_per_epoch = -(-len(train_images) // config.batch_size)
    if config.max_batches_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_batches_per_epoch)
    optimizer, scheduler = _optimizer_and_schedule(model, config, steps_per_epoch)

    start = time.perf_counter()
    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_state, stale = -1.0, 0, None, 0
    epochs = tqdm(range(1, config.epochs + 1), desc="training", unit="epoch", disable=_progress_disabled())
    for epoch in epochs:
        epoch_start = time.perf_counter()
        metrics = train_one_epoch(
            model, optimizer, scheduler, train_images, train_labels, config, weights, generator, epoch
        )
        probs = predict_proba(model, val_images, config.eval_batch_size, tta_flip=config.tta_flip)
        val = classification_metrics(val_labels, probs)
        metrics.update({f"val.{k}": v for k, v in val.items()})
        metrics["train.lr"] = scheduler.get_last_lr()[0]
        metrics["train.epoch_seconds"] = time.perf_counter() - epoch_start
        history.append({"epoch": epoch, **metrics})
        if val["macro_f1"] > best_f1:
            best_f1, best_epoch, stale = val["macro_f1"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        epochs.set_postfix(val_f1=f"{val['macro_f1']:.3f}", best=best_epoch)
        for callback in callbacks:
            callback(epoch, metrics)
        if config.early_stopping_patience is not None and stale >= config.early_stopping_patience:
            break
    return FitResult(
        state_dict=best_state,
        best_epoch=best_epoch,
        best_val_macro_f1=best_f1,
        history=history,
        seconds=time.perf_counter() - start,
    )
