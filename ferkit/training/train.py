"""`train`: build (or warm-start) a model, fit it on a data set and wrap the best weights as a
`TrainedModel`. The training step, the retraining step and `ferkit train` all call it."""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.files import atomic_write_text
from ferkit.metrics import apply_temperature, classification_metrics, fit_temperature
from ferkit.models import TrainedModel, build_model
from ferkit.models.predict import predict_proba
from ferkit.runtime import resolve_device, seed_everything
from ferkit.training import distributed
from ferkit.training.budget import (
    PLAN_SUFFIX,
    BudgetPlan,
    budgeted_config,
    plan_budget,
    plan_path,
    read_plan,
    state_of_plan,
    write_plan,
)
from ferkit.training.config import TrainConfig
from ferkit.training.loop import Deadline, EpochCallback, FitResult, fit

RESUME_DIR_ENV = "FERKIT_RESUME_DIR"  # where trainings keep their resumable state when no folder is given
ABANDONED_AFTER_DAYS = 30  # another config's resume state untouched this long belongs to no live training


@dataclass
class Training:
    """What `train` returns: the model to keep, the loop's result, and the network's size."""

    model: TrainedModel
    result: FitResult
    parameters: int  # trainable and frozen parameters of the network
    budget: BudgetPlan | None = None  # how many epochs fitted the config's time budget, and why


def train(
    config: TrainConfig,
    data: FERDataset,
    class_weights: Sequence[float] | None = None,
    init: TrainedModel | None = None,
    callbacks: Sequence[EpochCallback] = (),
    checkpoint_path: str | Path | None = None,
) -> Training:
    """Fit on `data`'s train split, choosing the epoch on its val split (the test split never enters).

    Without `init` the config's architecture is built from scratch after seeding; with it,
    training starts from `init`'s weights and architecture (a warm start, marked in the recipe).
    With `time_budget_minutes` the epochs are first fitted to the budget (`ferkit.training.budget`);
    a resumed training keeps the plan it started with.
    """
    checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
    with state_in_use(checkpoint):
        return _train(config, data, class_weights, init, callbacks, checkpoint)


def _train(
    config: TrainConfig,
    data: FERDataset,
    class_weights: Sequence[float] | None,
    init: TrainedModel | None,
    callbacks: Sequence[EpochCallback],
    checkpoint: Path | None,
) -> Training:
    train_split, val_split = data.split("train"), data.split("val")
    plan = None
    if config.time_budget_minutes is not None:
        config, plan = _fit_budget(config, train_split, val_split, checkpoint)
    seed_everything(config.seed)  # the initial weights belong to the seeded run too
    network = init.build() if init is not None else build_model(config.architecture, **config.architecture_kwargs)
    parameters = sum(p.numel() for p in network.parameters())
    result = fit(
        network,
        train_split.images,
        train_split.labels,
        val_split.images,
        val_split.labels,
        config,
        class_weights=class_weights,
        callbacks=callbacks,
        checkpoint_path=checkpoint,
        deadline=deadline_of(plan) if plan is not None else None,
    )
    model = TrainedModel(
        architecture=init.architecture if init else config.architecture,
        architecture_kwargs=dict(init.architecture_kwargs if init else config.architecture_kwargs),
        state_dict=result.state_dict,
        emotions=init.emotions if init else EMOTIONS,
        recipe={**config.recipe(), **({"warm_start": True} if init else {})},
        history=result.history,
    )
    model.calibration = fit_calibration(model, val_split.images, val_split.labels, config)
    return Training(model=model, result=result, parameters=parameters, budget=plan)


def deadline_of(plan: BudgetPlan) -> Deadline:
    """The training seconds a budget leaves after its rehearsal and the temperature fit (one more
    scoring of val after training): past them no epoch starts that would not end in time."""
    seconds = plan.minutes * 60 - plan.rehearsal_seconds - plan.validation_seconds
    return Deadline(seconds, plan.validation_seconds, plan.save_seconds, plan.epoch_seconds)


def _fit_budget(
    config: TrainConfig, train_split: FERDataset, val_split: FERDataset, checkpoint: Path | None
) -> tuple[TrainConfig, BudgetPlan]:
    """The config shortened to its time budget. A resumed training takes the plan kept beside its
    state; otherwise rank 0 rehearses (alone, under torchrun: a conservative plan for all ranks) and
    keeps its plan there. Every rank trains rank 0's plan, or raises rank 0's error."""
    workers = distributed.current()
    outcome = None
    if workers.is_main:
        try:
            outcome = (_plan_here(config, train_split, val_split, checkpoint), None)
        except ValueError as exc:
            outcome = (None, str(exc))
    plan, error = distributed.from_main(outcome, workers)
    if error is not None:
        raise ValueError(error)
    return budgeted_config(config, plan), plan


def _plan_here(
    config: TrainConfig, train_split: FERDataset, val_split: FERDataset, checkpoint: Path | None
) -> BudgetPlan:
    resumed = checkpoint is not None and checkpoint.is_file()
    plan = read_plan(checkpoint) if resumed else None
    if resumed and plan is None:
        raise ValueError(
            f"{checkpoint}: a resume state of a budgeted training without its plan {plan_path(checkpoint).name}: "
            f"its epochs are unknown; delete the state to start over (`make train FRESH=1`)"
        )
    if plan is not None:
        print(f"{plan.describe()} (the plan this training started with, kept in {plan_path(checkpoint)})", flush=True)
        return plan
    state_folder = checkpoint.parent if checkpoint is not None else None
    print(f"time budget {config.time_budget_minutes:.3g} min: timing a few training steps and a scoring of val "
          f"here first", flush=True)  # fmt: skip
    plan = plan_budget(config, train_split.images, train_split.labels, val_split.images, state_folder)
    if checkpoint is not None:
        write_plan(checkpoint, plan)
    print(plan.describe(), flush=True)
    return plan


TEMPERATURE_RANGE = (0.05, 20.0)


def fit_calibration(model: TrainedModel, images: np.ndarray, labels: np.ndarray, config: TrainConfig) -> dict:
    """Temperature scaling fitted on held-out faces (val) with the views `predict` uses by default
    (the mirror when the recipe trained with it), in fp32 as predictors run: what the checkpoint
    carries as `calibration`. A fit outside [0.05, 20] (a val set the model separates perfectly
    drives it towards 0) is clamped there."""
    tta = "flip" if config.tta_flip else "none"
    network = model.build().to(resolve_device(config.device))  # the training device: ResNet50 at 224 px is slow on CPU
    probs = predict_proba(network, images, config.eval_batch_size, tta=tta)
    fitted = fit_temperature(labels, probs)
    temperature = min(max(fitted, TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1]) if math.isfinite(fitted) else 1.0
    return {
        "temperature": temperature,
        "tta": tta,
        "fitted_on": "val",
        "images": int(len(labels)),
        "log_loss_before": classification_metrics(labels, probs)["log_loss"],
        "log_loss_after": classification_metrics(labels, apply_temperature(probs, temperature))["log_loss"],
    }


def resume_path(
    resume_dir: str | os.PathLike | None, config: TrainConfig, data: FERDataset, class_weights: Sequence[float]
) -> Path | None:
    """Where this exact training (config, data, weights) keeps its resumable state; None disables resume.

    `resume_dir` defaults to $FERKIT_RESUME_DIR. The name starts with the config's fingerprint,
    so the states of one config can be told from every other's in a shared folder.
    """
    root = resume_dir or os.environ.get(RESUME_DIR_ENV)
    if not root:
        return None
    key = hashlib.sha256(f"{config.fingerprint()}|{data.fingerprint}|{list(class_weights)}".encode()).hexdigest()
    return Path(root) / f"train-{config.fingerprint()}-{key[:20]}.pt"


def remove_resume_states(folder: str | os.PathLike, config: TrainConfig, keep: Path | None = None) -> list[Path]:
    """Delete `config`'s resume states in `folder` (other data or weights) with their budget plans,
    except `keep` and its plan (its caller holds its lock), and the temporary files killed writes
    left. Other configs' states are never touched, nor a state a live training holds
    (`state_in_use`), nor the file it is writing. Returns what was removed."""
    prefix = f"train-{config.fingerprint()}-"
    kept = {keep, plan_path(keep)} if keep is not None else set()
    states = [p for pattern in ("*.pt", "*.budget.json") for p in Path(folder).glob(prefix + pattern) if p not in kept]
    candidates = sorted(states + list(Path(folder).glob(f".{prefix}*.tmp")))
    # `keep`'s caller holds its lock, so a temporary file of `keep` is a killed write's, never a live one's.
    removed = [path for path in candidates if state_of_file(path) == keep or not in_use(state_of_file(path))]
    for state in removed:
        state.unlink(missing_ok=True)
        if state.suffix == ".pt":
            lock_of(state).unlink(missing_ok=True)
    return removed


def remove_abandoned_states(
    folder: str | os.PathLike, keep: Path | None = None, days: float = ABANDONED_AFTER_DAYS, now: float | None = None
) -> list[Path]:
    """Delete the resume states, budget plans and temporary files of killed writes in `folder` that
    nothing wrote for `days` days, except `keep` and its plan: configs tried once and dropped. A
    training rewrites its state after every epoch, so a live one is never among them, nor its plan.
    Returns what was removed."""
    cutoff = (time.time() if now is None else now) - days * 86400
    kept = {keep, plan_path(keep)} if keep is not None else set()
    removed = []
    for path in sorted([*Path(folder).glob("train-*.pt"), *Path(folder).glob("train-*.budget.json"),
                        *Path(folder).glob(".train-*.tmp")]):  # fmt: skip
        # A plan is written once, when its training starts: it is as old as its state, which every epoch rewrites.
        aged = state_of_plan(path) if path.name.endswith(PLAN_SUFFIX) and state_of_plan(path).is_file() else path
        try:
            if path not in kept and aged.stat().st_mtime < cutoff and not in_use(state_of_file(path)):
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another training removed or renamed it meanwhile
            continue
    for lock in Path(folder).glob(".train-*.pt.lock"):  # the locks of states gone, unless a training holds one
        state = lock.with_name(lock.name[1 : -len(".lock")])
        if not state.exists() and not in_use(state):
            lock.unlink(missing_ok=True)
    return removed


def lock_of(state: Path) -> Path:
    """The lock a training holds on its resume state `state` while it runs."""
    return state.with_name(f".{state.name}.lock")


def state_of_file(path: Path) -> Path:
    """The resume state a file in the resume folder belongs to: itself, its budget plan's state, or the
    state a temporary file (`.<state name>.<random>.tmp`) was being written to."""
    if path.name.endswith(PLAN_SUFFIX):
        return state_of_plan(path)
    if path.name.startswith(".") and path.name.endswith(".tmp"):
        return state_of_file(path.with_name(path.name[1:].rsplit(".", 2)[0]))
    return path


def in_use(state: Path) -> bool:
    """Whether a live training holds `state`'s lock (this process's own included)."""
    from filelock import FileLock, Timeout

    lock = lock_of(state)
    if not lock.exists():
        return False
    probe = FileLock(str(lock), timeout=0)  # not the singleton: a lock this process holds counts too
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


@contextmanager
def state_in_use(checkpoint: Path | None) -> Iterator[None]:
    """Hold `checkpoint`'s lock while a training runs (rank 0 only: the rank that writes it), so a second
    training of the same state in the same folder (the same config, faces and weights, e.g. a scheduled
    run beside `make train`) is refused instead of writing the state in turn with the first, and clean-ups
    leave it alone. A killed training's lock goes with its process; reentrant within one process."""
    if checkpoint is None or not distributed.current().is_main:
        yield
        return
    from filelock import FileLock, Timeout

    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_of(checkpoint)), timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise RuntimeError(
            f"{checkpoint}: another training of the same config, data and class weights is running and "
            f"writes this resume state (it holds {lock_of(checkpoint).name}); wait for it to finish, or train "
            "with another resume folder (FERKIT_HOME / FERKIT_RESUME_DIR)"
        ) from None
    try:
        yield
    finally:
        lock.release()


def train_resumable(
    config: TrainConfig,
    data: FERDataset,
    class_weights: Sequence[float],
    resume_dir: str | os.PathLike | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> Training:
    """`train` with its state saved every epoch under `resume_dir` (default $FERKIT_RESUME_DIR), so a
    rerun of an interrupted training continues where it stopped.

    The finished state stays until this config trains again, so a run that fails after training
    (materializing, evaluating) loses nothing; this config's older states (other data or class
    weights) go when it starts. Trainings of other configs sharing the folder keep theirs, unless
    nothing wrote them for `ABANDONED_AFTER_DAYS` days.
    """
    checkpoint = resume_path(resume_dir, config, data, class_weights)
    with state_in_use(checkpoint):  # first: a second run of the same training stops here, touching nothing
        if checkpoint is not None:
            remove_resume_states(checkpoint.parent, config, keep=checkpoint)
            abandoned = remove_abandoned_states(checkpoint.parent, keep=checkpoint)
            if abandoned:
                print(f"removed {len(abandoned)} resume file(s) untouched for {ABANDONED_AFTER_DAYS} days from "
                      f"{checkpoint.parent}: {', '.join(p.name for p in abandoned)}")  # fmt: skip
        return train(config, data, class_weights, callbacks=callbacks, checkpoint_path=checkpoint)


def fresh_run_config(
    config: dict, out: str | os.PathLike, resume_dir: str | os.PathLike | None = None
) -> tuple[Path, list[Path], str | None]:
    """Write the run config `config` with caching off to `out`, and remove the resume states of *its*
    training (those of its `train_model` config) from its resume folder (the config's `resume_dir`, else
    `resume_dir`, else $FERKIT_RESUME_DIR), so the next run trains from scratch and other configs' runs
    keep their states. Returns (out, removed states, the resume folder or None)."""
    config = {**config, "enable_cache": False}
    train_parameters = ((config.get("steps") or {}).get("train_model") or {}).get("parameters") or {}
    folder = train_parameters.get("resume_dir") or resume_dir or os.environ.get(RESUME_DIR_ENV)
    train_config = TrainConfig(**train_parameters["config"]) if "config" in train_parameters else None
    written = atomic_write_text(out, yaml.safe_dump(config, sort_keys=False))
    removed = remove_resume_states(folder, train_config) if folder and train_config else []
    return written, removed, str(folder) if folder else None
