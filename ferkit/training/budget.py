"""Fitting a training into a wall-clock budget: a short timed rehearsal on this machine says how
many of the config's epochs fit, and the phases shrink in proportion before training starts
(the one-cycle and cosine schedules then anneal over the epochs that run, not over ones cut off).

The same config trains the same number of epochs on a fast machine and fewer on a slow one. A
config's `short_budget` lightens its augmentation and dropout when the plan keeps few epochs: an
underfit model gains from less regularisation (docs/results.md, "Within a time budget"). The
plan (the measured speeds and the epochs they allow) is printed, logged and kept beside a resume
state, so a resumed training keeps the epochs it started with.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ferkit.files import atomic_write_text
from ferkit.models import build_model
from ferkit.models.predict import predict_proba
from ferkit.runtime import resolve_device
from ferkit.training.config import ProgressiveSettings, TrainConfig
from ferkit.training.epoch import class_repeats

MARGIN = 0.95  # share of the budget the projection may fill: logging and noise take the rest
REHEARSAL_BATCHES = 12  # timed training steps, after 3 that pay for allocation
REHEARSAL_VAL_FACES = 512  # val faces scored to time validation
STATE_COPIES = 5  # a resume state holds the weights, their average, the best ones and two optimizer moments


@dataclass(frozen=True)
class Rehearsal:
    """What a rehearsal measured on this machine."""

    images_per_second: float  # training steps of the recipe
    val_faces_per_second: float  # scoring val faces with the recipe's views
    save_seconds: float = 0.0  # writing one epoch's resume state; 0 without one


@dataclass(frozen=True)
class BudgetPlan:
    """How many epochs fit the budget here, and the measurements that say so."""

    minutes: float  # the budget: rehearsal, epochs, validations, state writes and the temperature fit
    configured_epochs: int  # what the config asks for, over all phases
    epochs: int  # what fits, never more than configured
    phase_epochs: list[int]  # `epochs` shared out over the phases
    images_per_second: float  # training throughput measured here
    val_faces_per_second: float  # scoring throughput measured here
    epoch_seconds: float  # projected training seconds of one epoch (without validation)
    validation_seconds: float  # projected seconds of one scoring of val
    save_seconds: float  # projected seconds of one epoch's resume state write
    projected_seconds: float  # the planned epochs with their validations and state writes
    rehearsal_seconds: float  # what measuring took, out of the budget
    lightened: dict[str, float] = field(default_factory=dict)  # the short_budget settings applied; {}: none

    def describe(self) -> str:
        fit = "all" if self.epochs == self.configured_epochs else f"{self.epochs} of"
        total = self.rehearsal_seconds + self.projected_seconds
        lighter = ", ".join(f"{k} {v:g}" for k, v in self.lightened.items())
        return (
            f"time budget {self.minutes:.3g} min: {fit} {self.configured_epochs} epochs fit here "
            f"({duration(self.epoch_seconds)} an epoch at {self.images_per_second:.0f} images/s, "
            f"{duration(self.validation_seconds)} to score val; about {duration(total)} in all)"
            + (f"; so few epochs train with short_budget's lighter regularisation: {lighter}" if lighter else "")
        )

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> BudgetPlan:
        return cls(**values)


def duration(seconds: float) -> str:
    """Seconds as people say them: 0.4 s, 40 s, 2 min 28 s, 12 min, 2 h 05 min."""
    minutes = round(seconds / 60)
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    if seconds < 599.5:  # a few minutes: the seconds still tell an epoch's pace
        whole, rest = divmod(round(seconds), 60)
        return f"{whole} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def validations(phase_epochs: list[int], validate_every: int) -> int:
    """How often `fit` scores val over these phases (every `validate_every`-th epoch, counted over
    all phases, and each phase's last), plus the temperature fit after training."""
    scored, start = 0, 0
    for epochs in phase_epochs:
        end = start + epochs
        scored += end // validate_every - start // validate_every + (end % validate_every != 0)
        start = end
    return scored + 1


def steps_per_epoch(config: TrainConfig, labels: np.ndarray) -> int:
    """Optimizer steps of one epoch: every face once, repeated classes `repeats` times."""
    steps = -(-int(class_repeats(config)[labels].sum()) // config.batch_size)
    return min(steps, config.max_batches_per_epoch) if config.max_batches_per_epoch is not None else steps


def measure(
    config: TrainConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    state_folder: Path | None = None,
) -> Rehearsal:
    """Time the recipe's training steps (model, optimizer, augmentation, precision, weight average)
    and its scoring of val faces on the training device, with throwaway weights; with
    `state_folder`, also the write of a resume state of that size there."""
    from ferkit.training.speed import training_throughput  # builds the recipe's model as fit does

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    rehearsal = config.model_copy(update={"max_batches_per_epoch": None})
    batches = max(1, min(REHEARSAL_BATCHES, steps_per_epoch(rehearsal, train_labels)))
    training = training_throughput(rehearsal, train_images, train_labels, batches, ema=True)
    network = build_model(config.architecture, **config.architecture_kwargs).to(resolve_device(config.device))
    if config.channels_last:
        network.to(memory_format=torch.channels_last)
    sample = val_images[:REHEARSAL_VAL_FACES]
    score = dict(batch_size=config.eval_batch_size, tta_flip=config.tta_flip, bf16=config.bf16)
    predict_proba(network, sample[:32], **score)  # warm-up: allocation
    start = time.perf_counter()
    predict_proba(network, sample, **score)
    val_faces_per_second = len(sample) / max(time.perf_counter() - start, 1e-9)
    save_seconds = time_state_write(network, state_folder) if state_folder is not None else 0.0
    return Rehearsal(training["images_per_second"], val_faces_per_second, save_seconds)


def time_state_write(network: torch.nn.Module, folder: Path) -> float:
    """Seconds to write (and sync) a resume state of `network`'s size in `folder`, as `fit` does
    after every epoch; the file is removed."""
    weights = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    payload = {f"copy{i}": {k: v.clone() for k, v in weights.items()} for i in range(STATE_COPIES)}
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f".train-rehearsal-{os.getpid()}.tmp"  # a kill leaves what abandoned-state clean-up takes
    start = time.perf_counter()
    try:
        with target.open("wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        return time.perf_counter() - start
    finally:
        target.unlink(missing_ok=True)


def plan_budget(
    config: TrainConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    state_folder: Path | None = None,
    rehearse: Callable[..., Rehearsal] | None = None,
) -> BudgetPlan:
    """The epochs of `config` that fit its `time_budget_minutes` here, the rehearsal's time included,
    and the config's `short_budget` settings where it applies to that share of the epochs.

    `rehearse` (default `measure`) times this machine. It trains every parameter at the full face
    size, so frozen phases and progressive resizing's small faces only shorten the real run.
    Raises ValueError when not even one epoch a phase fits.
    """
    if config.time_budget_minutes is None:
        raise ValueError("the config sets no time_budget_minutes")
    start = time.perf_counter()
    measured = (rehearse or measure)(config, train_images, train_labels, val_images, state_folder)
    rehearsal_seconds = time.perf_counter() - start
    steps = steps_per_epoch(config, train_labels)
    epoch_seconds = steps * config.batch_size / measured.images_per_second
    validation_seconds = len(val_images) / measured.val_faces_per_second

    def seconds(phase_epochs: list[int]) -> float:
        scorings = validations(phase_epochs, config.validate_every)
        return sum(phase_epochs) * (epoch_seconds + measured.save_seconds) + scorings * validation_seconds

    configured = [p.epochs for p in config.resolved_phases()]
    available = config.time_budget_minutes * 60 * MARGIN - rehearsal_seconds
    plans = (share_epochs(configured, e) for e in range(sum(configured), len(configured) - 1, -1))
    phase_epochs = next((p for p in plans if seconds(p) <= available), None)
    if phase_epochs is None:
        least = [1] * len(configured)
        needed = (seconds(least) + rehearsal_seconds) / MARGIN / 60
        raise ValueError(
            f"time_budget_minutes {config.time_budget_minutes:g}: not even {len(configured)} epoch(s) (one per "
            f"phase) fit on this machine; they need at least {needed:.1f} min (an epoch {duration(epoch_seconds)} "
            f"at {measured.images_per_second:.0f} training images/s, {steps} steps of {config.batch_size}; "
            f"scoring val {duration(validation_seconds)}; saving the state {duration(measured.save_seconds)}; the "
            f"rehearsal {duration(rehearsal_seconds)}): raise the budget, or make an epoch cheaper "
            f"(max_batches_per_epoch, fewer phases)"
        )
    short = config.short_budget
    lightened = short.changes() if short is not None and short.applies(sum(phase_epochs), sum(configured)) else {}
    return BudgetPlan(
        minutes=config.time_budget_minutes,
        configured_epochs=sum(configured),
        epochs=sum(phase_epochs),
        phase_epochs=phase_epochs,
        images_per_second=measured.images_per_second,
        val_faces_per_second=measured.val_faces_per_second,
        epoch_seconds=epoch_seconds,
        validation_seconds=validation_seconds,
        save_seconds=measured.save_seconds,
        projected_seconds=seconds(phase_epochs),
        rehearsal_seconds=rehearsal_seconds,
        lightened=lightened,
    )


def share_epochs(configured: list[int], epochs: int) -> list[int]:
    """`epochs` shared over phases in proportion to their configured epochs (largest remainder),
    each phase at least one and none more than it was configured with."""
    total = sum(configured)
    if epochs >= total:
        return list(configured)
    if epochs < len(configured):
        raise ValueError(f"{epochs} epoch(s) cannot cover {len(configured)} phases")
    spare = epochs - len(configured)  # one epoch each first, the rest in proportion to what is left
    wants = [(c - 1) * spare / max(total - len(configured), 1) for c in configured]
    shares = [1 + math.floor(w) for w in wants]
    by_remainder = sorted(range(len(configured)), key=lambda i: (wants[i] - math.floor(wants[i]), -i), reverse=True)
    for i in by_remainder[: epochs - sum(shares)]:
        shares[i] += 1
    return shares


def budgeted_config(config: TrainConfig, plan: BudgetPlan) -> TrainConfig:
    """`config` with the plan's epochs: each phase shortened, progressive resizing's small-face
    epochs in proportion (none when only one epoch is left), and the augmentation strength and
    dropout the plan lightened."""
    if plan.epochs == config.total_epochs:
        return config
    update: dict = {}
    if "augment_strength" in plan.lightened:
        update["augment"] = config.augment.model_copy(update={"strength": plan.lightened["augment_strength"]})
    if "dropout" in plan.lightened:
        update["architecture_kwargs"] = {**config.architecture_kwargs, "dropout": plan.lightened["dropout"]}
    if config.phases:
        update["phases"] = [p.model_copy(update={"epochs": n}) for p, n in zip(config.phases, plan.phase_epochs)]
    else:
        update["epochs"] = plan.epochs
    if config.progressive is not None:
        small = round(config.progressive.epochs * plan.epochs / config.total_epochs)
        small = min(max(small, 1), plan.epochs - 1)
        update["progressive"] = ProgressiveSettings(size=config.progressive.size, epochs=small) if small else None
    return TrainConfig(**{**config.model_dump(), **update})


PLAN_SUFFIX = ".budget.json"


def plan_path(state: Path) -> Path:
    """Where a resumable training keeps its budget plan: beside its state."""
    return state.with_name(state.stem + PLAN_SUFFIX)


def state_of_plan(plan: Path) -> Path:
    """The resume state a plan file belongs to."""
    return plan.with_name(plan.name.removesuffix(PLAN_SUFFIX) + ".pt")


def read_plan(state: Path) -> BudgetPlan | None:
    """The plan the training whose resume state is `state` made when it started, if it made one."""
    path = plan_path(state)
    if not path.is_file():
        return None
    try:
        return BudgetPlan.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a budget plan ({exc}); delete it and {state.name} to start over") from None


def write_plan(state: Path, plan: BudgetPlan) -> None:
    atomic_write_text(plan_path(state), json.dumps(plan.as_dict(), indent=2))
