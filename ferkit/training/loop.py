"""`fit`: a model through the config's phases, the epoch chosen on val; logging plugs in as callbacks.

The loop knows nothing about MLflow or ZenML: the training step passes a callback
that logs each epoch's metrics wherever it likes. Training runs in phases (data,
not copies of the loop): each names its epochs, optimizer, learning rate and the
parameters it may change. The state it keeps lives in small objects of
`ferkit.training.state`; one epoch is `ferkit.training.epoch.train_one_epoch`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ferkit.data.labels import EMOTIONS, IMAGE_SIZE
from ferkit.metrics.classification import classification_metrics
from ferkit.models.ema import model_ema
from ferkit.models.predict import predict_proba
from ferkit.runtime import keep_freed_memory, progress_disabled, resolve_device, seed_everything
from ferkit.training import distributed
from ferkit.training.budget import duration
from ferkit.training.config import Phase, TrainConfig
from ferkit.training.epoch import (
    EpochSetup,
    class_repeats,
    make_optimizer,
    past_predictions,
    set_trainable,
    train_one_epoch,
)
from ferkit.training.state import (
    BestWeights,
    EarlyStopping,
    load_resume_state,
    plain_history,
    restore_rng,
    rng_state,
    save_resume_state,
    training_data_key,
)

EpochCallback = Callable[[int, dict[str, float]], None]
EndedBy = Literal["all epochs", "early stopping", "time budget", "deadline"]
ALL_EPOCHS, EARLY_STOPPING, TIME_BUDGET, DEADLINE = "all epochs", "early stopping", "time budget", "deadline"
STOPPED_BY = {TIME_BUDGET: "train.stopped_by_time_budget", DEADLINE: "train.stopped_by_deadline"}


@dataclass
class FitResult:
    state_dict: dict[str, torch.Tensor]  # weights of the best validation epoch
    best_epoch: int  # 1-based, counted over all phases
    best_val_macro_f1: float
    ended_by: EndedBy  # why the training ended: ended_by()
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # training time, including time before a resume

    @property
    def epochs_trained(self) -> int:
        """Epochs trained over all phases, a resumed training's earlier ones included."""
        return int(self.history[-1]["epoch"]) if self.history else 0


def ended_by(history: Sequence[dict[str, float]], phases: Sequence[Phase]) -> EndedBy:
    """Why a training with this `history` over these `phases` ended: `time budget` (its deadline came
    before the last epoch), `deadline` (the config's `deadline` cut the schedule's tail), `early
    stopping` (the last phase stopped before its epochs ran out; an earlier phase stopping early
    hands over to the next one) or `all epochs` (of the phases, which a time budget may have
    shortened)."""
    for reason, key in STOPPED_BY.items():
        if history and history[-1].get(key):
            return reason
    last = len(phases) - 1
    in_last = sum(1 for h in history if int(h["train.phase"]) == last)
    return EARLY_STOPPING if in_last < phases[last].epochs else ALL_EPOCHS


@dataclass(frozen=True)
class Deadline:
    """The wall-clock training seconds a time budget leaves (a resumed training's earlier ones
    count), and what one scoring of val is expected to take, until the run has timed one."""

    seconds: float
    validation_seconds: float = 0.0
    save_seconds: float = 0.0
    epoch_seconds: float = 0.0  # the plan's epoch (every parameter, full-size faces): the least one is taken to cost


def loss_weights(
    class_weights: Sequence[float] | None, repeats: np.ndarray, config: TrainConfig, device: torch.device
) -> torch.Tensor | None:
    """Per-class loss weights, or None when the config does not weight the loss.

    A class repeated `r` times per epoch already weighs `r` times as much: its weight is divided by `r`.
    """
    if not config.use_class_weights or class_weights is None:
        return None
    weights = torch.tensor(list(class_weights), dtype=torch.float32)
    if weights.shape != (len(EMOTIONS),):
        raise ValueError(f"class_weights must have {len(EMOTIONS)} entries, got {tuple(weights.shape)}")
    return (weights / torch.as_tensor(repeats, dtype=torch.float32)).to(device)


def prepare_epochs(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    config: TrainConfig,
    class_weights: Sequence[float] | None = None,
) -> EpochSetup:
    """Seed, place the model on its device (synced BatchNorm, memory format), weights, EMA: what every epoch shares."""
    workers = distributed.current()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    model.to(device)
    model = distributed.sync_batchnorm(model, workers)
    # Both ways: a warm start's network comes built in channels_last, and a config without it trains NCHW.
    model.to(memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    repeats = class_repeats(config)
    weights = loss_weights(class_weights, repeats, config, device)
    # uint8 images live on the device once (66 MB for FER2013): batches are gathered there, not copied per step.
    images = torch.from_numpy(np.ascontiguousarray(train_images)).to(device)
    ema = model_ema(model, config.ema_decay) if config.ema_decay is not None else None
    past = past_predictions(train_labels, config, device)
    return EpochSetup(model, images, train_labels, config, generator, weights, repeats, ema, workers, past)


class _Run:
    """One call of `fit`: walks the phases, validates, keeps the best weights and the resume state."""

    def __init__(
        self,
        setup: EpochSetup,
        val_images: np.ndarray,
        val_labels: np.ndarray,
        callbacks: Sequence[EpochCallback],
        checkpoint: Path | None,
        deadline: Deadline | None = None,
        data: str = "",
    ):
        self.setup, self.config, self.workers = setup, setup.config, setup.workers
        self.data = data  # training_data_key: a resume state of other faces or weights is refused
        self.deadline, self.out_of_time = deadline, False
        self.stopped_by = TIME_BUDGET  # what a deadline that ends the training is called
        # The config's own limit (not under a budget), decided once at a pace of the last phase's full-size
        # epochs: `limit_decision` None until then, then whether it is armed; a resume state keeps it.
        self.limit = self.config.deadline if deadline is None and self.config.time_budget_minutes is None else None
        self.limit_decision: bool | None = None
        self.pace_from: tuple[float, int] | None = None  # (clock, epochs trained) where the pace is timed from
        self.validation_seconds = deadline.validation_seconds if deadline is not None else 0.0
        self.save_seconds = deadline.save_seconds if deadline is not None else 0.0
        self.val_images, self.val_labels = val_images, val_labels
        self.callbacks = list(callbacks) if self.workers.is_main else []
        self.checkpoint = checkpoint
        self.phases = self.config.resolved_phases()
        steps = -(-int(setup.repeats[setup.labels].sum()) // self.config.batch_size)
        if self.config.max_batches_per_epoch is not None:
            steps = min(steps, self.config.max_batches_per_epoch)
        self.steps_per_epoch = steps
        self.history: list[dict[str, float]] = []
        self.best = BestWeights()
        self.start_phase, self.start_epoch, self.elapsed = 0, 0, 0.0
        self.state: dict | None = None
        if checkpoint is not None:  # rank 0 reads it and hands it on: other nodes need not see the file
            found = load_resume_state(checkpoint, self.config, self.data) if self.workers.is_main else None
            self.state = distributed.from_main(found, self.workers)
        if self.state is not None:
            self._restore(self.state)
        self.start = time.perf_counter()

    def _restore(self, state: dict) -> None:
        self.setup.model.load_state_dict(state["model"])
        if self.setup.ema is not None:
            self.setup.ema.load_state_dict(state["ema"])
        if self.setup.past is not None:
            self.setup.past.copy_(state["past"])
        self.history = state["history"]
        self.best = BestWeights(state["best_f1"], state["best_epoch"], state["best"])
        self.start_phase, self.start_epoch, self.elapsed = (state["phase"], state["epoch_in_phase"], state["seconds"])
        if self.limit is not None and state.get("limit") is not None:  # decided before the interruption
            self._decide_limit(state["limit"]["armed"], state["limit"]["validation_seconds"])
        restore_rng(state["rng"], self.setup.generator)
        for past in self.history:  # a resumed run reports its whole history
            for callback in self.callbacks:
                callback(int(past["epoch"]), {k: v for k, v in past.items() if k != "epoch"})

    def run(self) -> FitResult:
        self.bar = tqdm(
            total=self.config.total_epochs,
            initial=len(self.history),
            desc="training",
            unit="epoch",
            disable=progress_disabled() or not self.workers.is_main,
        )
        for index in range(self.start_phase, len(self.phases)):
            self._phase(index)
            self.state = None  # only the phase a resume starts in takes its optimizer state
            if self.out_of_time:
                break
        self.bar.close()
        return FitResult(
            state_dict=copy.deepcopy(self.best.state),
            best_epoch=self.best.epoch,
            best_val_macro_f1=self.best.score,
            history=self.history,
            seconds=self.elapsed + time.perf_counter() - self.start,
            ended_by=ended_by(self.history, self.phases),
        )

    def _phase(self, index: int) -> None:
        phase, model = self.phases[index], self.setup.model
        params = set_trainable(model, phase.trainable, phase.name)
        net = distributed.wrap(model, self.workers)  # per phase: DDP hooks the parameters trainable now
        optimizer, scheduler = make_optimizer(
            params, phase, self.config.weight_decay, phase.epochs * self.steps_per_epoch
        )
        first_epoch, stopping = 0, EarlyStopping(self.config.early_stopping_patience)
        if self.state is not None and index == self.start_phase and self.state["optimizer"] is not None:
            optimizer.load_state_dict(self.state["optimizer"])
            scheduler.load_state_dict(self.state["scheduler"])
            first_epoch, stopping.stale = self.start_epoch, self.state["stale"]
        for epoch_in_phase in range(first_epoch, phase.epochs):
            epoch_start = time.perf_counter()
            desc = f"{phase.name} {epoch_in_phase + 1}/{phase.epochs}"
            size = self.config.train_size(len(self.history))
            desc += f" at {size} px" if size is not None else ""
            self.setup.distill_share = self.config.distill_share(len(self.history))
            metrics = train_one_epoch(self.setup, optimizer, scheduler, desc, net, size)
            last_of_phase = epoch_in_phase + 1 == phase.epochs
            final = index == len(self.phases) - 1 and last_of_phase
            self.out_of_time = not final and self._no_time_for_another(epoch_start)
            self._end_epoch(
                metrics,
                last_of_phase or self.out_of_time,  # the last epoch trained is always scored
                stopping,
                epoch_start,
                {
                    "train.lr": scheduler.get_last_lr()[0],
                    "train.phase": float(index),
                    "train.trainable_parameters": float(sum(p.numel() for p in params)),
                    **({"train.image_size": float(size or IMAGE_SIZE)} if self.config.progressive else {}),
                    **({"train.distill_share": self.setup.distill_share} if self.config.self_distill else {}),
                },
            )
            # Early stopping that ends the last phase ends the training anyway: not the budget's doing.
            self.out_of_time = self.out_of_time and not (stopping.should_stop and index == len(self.phases) - 1)
            if self.out_of_time:
                metrics[STOPPED_BY[self.stopped_by]] = self.history[-1][STOPPED_BY[self.stopped_by]] = 1.0
                self._say_out_of_time(epoch_start)
            if self.limit is not None and self.limit_decision is None and not self.out_of_time:
                self._consider_limit(index, epoch_start)  # before the state write, which keeps the decision
            if self.checkpoint is not None and self.workers.is_main:
                done = stopping.should_stop or last_of_phase or self.out_of_time
                # Out of time, every phase is done: a resume of the state trains nothing more.
                ended = len(self.phases) - 1 if self.out_of_time else index
                save_start = time.perf_counter()
                self._save(ended, 0 if done else epoch_in_phase + 1, done, stopping, optimizer, scheduler)
                self.save_seconds = max(self.save_seconds, time.perf_counter() - save_start)
            self.bar.update(1)
            if epoch_in_phase == first_epoch and index == self.start_phase and not self.out_of_time:
                self._say_pace(time.perf_counter() - epoch_start)
            val_f1 = f"{metrics['val.macro_f1']:.3f}" if "val.macro_f1" in metrics else "-"
            self.bar.set_postfix(phase=phase.name, val_f1=val_f1, best=self.best.epoch)
            for callback in self.callbacks:
                callback(len(self.history), metrics)
            if stopping.should_stop or self.out_of_time:
                break

    def _no_time_for_another(self, epoch_start: float) -> bool:
        """Whether the deadline leaves no room, after the epoch just trained with its scoring of val
        and state write, for another epoch with its own (a machine slower than its rehearsal). The
        next epoch costs at least the plan's: a frozen phase or small faces may have been cheaper."""
        if self.deadline is None:
            return False
        now = time.perf_counter()
        spent = self.elapsed + now - self.start + self.validation_seconds + self.save_seconds
        another = max(now - epoch_start, self.deadline.epoch_seconds) + self.validation_seconds + self.save_seconds
        # Rank 0's clock decides for every rank, so all stop after the same epoch.
        return bool(distributed.from_main(spent + another > self.deadline.seconds, self.workers))

    def _consider_limit(self, index: int, epoch_start: float) -> None:
        """Decide, once, whether the config's deadline holds this training: at the first scored epoch
        of the last phase at full size, from the pace of that phase's full-size epochs this run has
        trained (their scorings and the earlier ones' state writes included, so the epochs left are
        projected with scorings at the same share). A frozen phase or small faces are cheaper than what follows, so they do not count.
        Armed where the projection overruns the limit by at most the share of epochs it may cut."""
        epoch = len(self.history)  # the epoch just trained, 1-based
        if index != len(self.phases) - 1 or self.config.train_size(epoch - 1) is not None:
            return
        if self.pace_from is None:
            self.pace_from = (epoch_start, epoch - 1)
        left = self.config.total_epochs - epoch
        if "val.macro_f1" not in self.history[-1] or left <= 0:
            return
        now = time.perf_counter()
        pace = (now - self.pace_from[0]) / (epoch - self.pace_from[1])
        projected = self.elapsed + now - self.start + left * pace
        limit = self.limit
        armed = bool(distributed.from_main(limit.arms(projected), self.workers))  # rank 0's clock decides
        self._decide_limit(armed, self.validation_seconds)
        if not self.workers.is_main:
            return
        said = f"at this pace ({duration(pace)} an epoch) the training takes about {duration(projected)}"
        if projected <= limit.minutes * 60:
            said += "; within it (should the machine slow down, training ends at the deadline)"
        elif armed:
            over = duration(projected - limit.minutes * 60)
            said += f"; it ends at the deadline, about {over} early, with the best epoch so far"
        else:
            said += (f"; more than cutting at most {limit.max_cut:.0%} of the epochs saves: the whole schedule trains "
                     f"(time_budget_minutes plans fewer epochs to fit a budget)")  # fmt: skip
        self.bar.write(f"deadline {limit.minutes:g} min: {said}")

    def _decide_limit(self, armed: bool, validation_seconds: float) -> None:
        self.limit_decision = armed
        if armed:  # the next epoch is taken to cost what the one before it did: no plan says more
            self.deadline = Deadline(self.limit.minutes * 60)
            self.validation_seconds = max(self.validation_seconds, validation_seconds)
            self.stopped_by = DEADLINE

    def _say_out_of_time(self, epoch_start: float) -> None:
        if not self.workers.is_main:
            return
        spent = self.elapsed + time.perf_counter() - self.start
        slower = "slower than the rehearsal found" if self.stopped_by == TIME_BUDGET else "the schedule's tail is cut"
        self.bar.write(
            f"{self.stopped_by}: training ends after epoch {len(self.history)} of {self.config.total_epochs}: "
            f"{duration(spent)} of its {duration(self.deadline.seconds)} spent, and the last epoch took "
            f"{duration(time.perf_counter() - epoch_start)} with its scoring ({slower}); the best epoch so far is kept"
        )

    def _say_pace(self, seconds: float) -> None:
        """After the first epoch this run trains: how long the rest will take at its pace."""
        left = self.config.total_epochs - len(self.history)
        if not self.workers.is_main or left <= 0:
            return
        message = (f"training: epoch {len(self.history)} took {duration(seconds)}; the {left} left take about "
                   f"{duration(seconds * left)} at this pace")  # fmt: skip
        if self.config.time_budget_minutes is None and seconds * left > 3600:
            message += " (time_budget_minutes fits the training into a budget with fewer epochs)"
        self.bar.write(message)

    def _end_epoch(
        self,
        metrics: dict[str, float],
        last_of_phase: bool,
        stopping: EarlyStopping,
        epoch_start: float,
        extra: dict[str, float],
    ) -> None:
        """Validate when due, record the epoch, keep the best weights, count towards early stopping."""
        epoch = len(self.history) + 1
        scored = self.setup.ema.module if self.setup.ema is not None else self.setup.model
        validate = last_of_phase or epoch % self.config.validate_every == 0
        if validate:
            scoring_start = time.perf_counter()
            probs = predict_proba(
                scored,
                self.val_images,
                self.config.eval_batch_size,
                tta_flip=self.config.tta_flip,
                bf16=self.config.bf16,
            )
            val = distributed.from_main(classification_metrics(self.val_labels, probs), self.workers)
            metrics.update({f"val.{k}": v for k, v in val.items()})
            self.validation_seconds = max(self.validation_seconds, time.perf_counter() - scoring_start)
        metrics.update(extra)
        metrics["train.epoch_seconds"] = time.perf_counter() - epoch_start
        self.history.append({"epoch": epoch, **metrics})
        # An epoch left unscored neither moves the checkpoint choice nor counts towards early stopping.
        if validate:
            stopping.update(self.best.offer(epoch, metrics["val.macro_f1"], scored))

    def _save(
        self,
        index: int,
        next_epoch: int,
        done: bool,
        stopping: EarlyStopping,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> None:
        ema = self.setup.ema
        save_resume_state(
            {
                "config": self.config.fingerprint(),
                "data": self.data,
                "phase": index + 1 if done else index,
                "epoch_in_phase": next_epoch,
                "stale": stopping.stale,
                "model": self.setup.model.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "past": self.setup.past.cpu() if self.setup.past is not None else None,
                "optimizer": None if done else optimizer.state_dict(),  # a new phase builds its own
                "scheduler": None if done else scheduler.state_dict(),
                "history": plain_history(self.history),
                "best": self.best.state,
                "best_f1": self.best.score,
                "best_epoch": self.best.epoch,
                "seconds": self.elapsed + time.perf_counter() - self.start,
                "rng": rng_state(self.setup.generator),
                "limit": None
                if self.limit_decision is None
                else {"armed": self.limit_decision, "validation_seconds": self.validation_seconds},
            },
            self.checkpoint,
        )


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
    deadline: Deadline | None = None,
) -> FitResult:
    """Train through the config's phases, keep the weights of the best validation macro-F1.

    Early stopping watches the same figure and ends the current phase. The test split
    never enters here. With `checkpoint_path`, the full state is saved after every epoch
    and a run started again with the same config resumes where it stopped and ends with
    the same weights as an uninterrupted run.

    With `deadline` (a time budget's), training ends early where the machine runs slower than its
    rehearsal said: after the epoch past which another would end beyond the deadline. That epoch
    is scored on val, the best epoch so far is kept, and its metrics carry
    `train.stopped_by_time_budget`. A machine as fast as its rehearsal found ends where the plan
    said, unless what the plan does not time (logging, warm-up) outgrows its 5% spare. Without
    one, the config's own `deadline` is decided at the first scored epoch of the last phase at
    full size: armed where the schedule about fits it at that pace (`DeadlineSettings`), it ends
    the training the same way (`train.stopped_by_deadline`); a resumed training keeps the decision.

    Inside an initialised process group (torchrun, see `ferkit.training.distributed`) each
    rank trains on its slice of every global batch; only rank 0 calls the callbacks and
    writes the checkpoint.
    """
    if len(train_images) == 0:
        raise ValueError("the training split is empty")
    if len(val_images) == 0:
        raise ValueError("the validation split is empty; best-epoch selection needs it")
    keep_freed_memory()  # no page faults on every step's fresh activations
    setup = prepare_epochs(model, train_images, train_labels, config, class_weights)
    checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
    data = training_data_key(train_images, train_labels, val_images, val_labels, class_weights) if checkpoint else ""
    return _Run(setup, val_images, val_labels, callbacks, checkpoint, deadline, data).run()
