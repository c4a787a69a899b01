"""What a training run is told: phases, augmentation and the loop's settings, as typed config.

configs/*.yaml set these under the train step; unknown fields are refused.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ferkit.data.augment import AugmentConfig, MixConfig
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE
from ferkit.runtime import resolve_precision

ALL = "all"  # a phase's `trainable` entry meaning every parameter


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


class MixSettings(BaseModel):
    """YAML face of `MixConfig`: mixing image pairs, their labels mixed in the loss."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["mixup", "cutmix"]  # a blend of two faces, or a box of one pasted into the other
    alpha: float = Field(1.0, gt=0)  # the mixing share is drawn from Beta(alpha, alpha)
    probability: float = Field(1.0, gt=0, le=1)  # share of batches mixed

    def to_config(self) -> MixConfig:
        return MixConfig(**self.model_dump())


class SelfDistillSettings(BaseModel):
    """Progressive self-knowledge distillation (PS-KD, Kim et al. 2021): the model teaches itself.
    Each face's target is its label blended with what the model predicted for it the last time it
    trained on it (an epoch earlier), the blend's share rising linearly from 0 at the first epoch
    to `alpha` at the last. The teacher costs no forward pass: its predictions are the training's own."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.8, gt=0, le=1)  # the share of the model's own past prediction at the last epoch


class ProgressiveSettings(BaseModel):
    """Progressive resizing (as in fast.ai's DAWNBench runs; the train-test resolution effect,
    Touvron et al. 2019): the first epochs see smaller faces, so they cost less, and the last
    ones the native 48 px faces the model is evaluated on."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=16, lt=IMAGE_SIZE)  # side in pixels of the faces of the early epochs
    epochs: int = Field(ge=1)  # how many epochs, counted over all phases, train at `size`


class ShortBudgetSettings(BaseModel):
    """Lighter regularisation for a time budget that keeps few of the configured epochs: a model
    trained that briefly underfits, and the augmentation and dropout sized for the whole schedule
    then cost more than they give (docs/results.md, "Within a time budget")."""

    model_config = ConfigDict(extra="forbid")

    max_share: float = Field(gt=0, lt=1)  # applies when the plan keeps at most this share of the epochs
    augment_strength: float | None = Field(None, ge=0)  # replaces augment.strength; None keeps it
    dropout: float | None = Field(None, ge=0, lt=1)  # replaces architecture_kwargs' dropout; None keeps it

    def applies(self, epochs: int, configured_epochs: int) -> bool:
        return epochs <= self.max_share * configured_epochs

    def changes(self) -> dict[str, float]:
        """What it sets, by field name: logged with the plan that applied it."""
        return {k: v for k, v in self.model_dump().items() if k != "max_share" and v is not None}


class DeadlineSettings(BaseModel):
    """A wall-clock limit for a schedule that about fits it: where the first epoch's pace says the
    epochs would overrun `minutes` by at most `max_cut` of them, the schedule is kept as configured
    and the training ends after the last epoch that ends in time (the one-cycle tail is cut, not
    replanned; a quick machine trains every epoch, the seeded run as without the limit). A slower
    machine trains the whole schedule and says how long it takes: cutting more would stop far from
    the end of the schedule, where `time_budget_minutes` plans fewer epochs instead."""

    model_config = ConfigDict(extra="forbid")

    minutes: float = Field(gt=0)  # training minutes (epochs, their scorings of val and state writes)
    max_cut: float = Field(0.2, ge=0, lt=1)  # the largest share of the epochs the limit may cut off

    def arms(self, projected_seconds: float) -> bool:
        """Whether a training projected to take `projected_seconds` in all is held to the limit."""
        return projected_seconds * (1 - self.max_cut) <= self.minutes * 60


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
    mix: MixSettings | None = None  # mixup or cutmix after augmentation; None: no mixing
    progressive: ProgressiveSettings | None = None  # smaller faces in the first epochs; None: 48 px throughout
    self_distill: SelfDistillSettings | None = None  # targets blended with the model's past predictions; None: labels
    tta_flip: bool = True  # average predictions over the image and its mirror at evaluation
    ema_decay: float | None = Field(None, gt=0, lt=1)  # evaluate and keep an exponential moving average
    early_stopping_patience: int | None = Field(10, ge=1)  # validations without improvement end a phase
    validate_every: int = Field(1, ge=1)  # score val every n-th epoch (and always a phase's last epoch)
    max_batches_per_epoch: int | None = Field(None, ge=1)  # cap for smoke runs; None = whole split
    eval_batch_size: int = Field(512, ge=1)  # images per forward pass when predicting
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: Literal["auto", "fp32", "bf16"] = "fp32"  # auto: bf16 autocast where it pays (bf16_pays)
    channels_last: bool = False  # NHWC memory format, faster convolutions on CPU and GPU
    seed: int = 0  # seeds python, numpy and torch
    num_threads: int | None = Field(None, ge=1)  # torch intra-op threads; None = all cores
    time_budget_minutes: float | None = Field(None, gt=0)  # wall-clock budget: fewer epochs where not all fit
    short_budget: ShortBudgetSettings | None = None  # lighter regularisation when the budget keeps few epochs
    deadline: DeadlineSettings | None = (
        None  # a limit that cuts the tail of a schedule that about fits; a budget overrides it
    )

    @field_validator("class_repeats")
    @classmethod
    def _known_emotions(cls, value: dict[str, int]) -> dict[str, int]:
        for emotion, copies in value.items():
            if emotion not in EMOTIONS:
                raise ValueError(f"class_repeats: unknown emotion {emotion!r}; expected one of {EMOTIONS}")
            if copies < 1:
                raise ValueError(f"class_repeats: {emotion} has {copies} copies; at least 1")
        return value

    @model_validator(mode="after")
    def _check_progressive(self) -> TrainConfig:
        if self.progressive is not None and self.progressive.epochs >= self.total_epochs:
            raise ValueError(
                f"progressive.epochs is {self.progressive.epochs} of {self.total_epochs} epochs in all: "
                f"at least the last epoch must train on {IMAGE_SIZE} px faces"
            )
        return self

    @model_validator(mode="after")
    def _check_short_budget_dropout(self) -> TrainConfig:
        if self.short_budget is None or self.short_budget.dropout is None:
            return self
        from ferkit.models.registry import MODELS  # torch models: only for a config that sets this

        builder = MODELS.builders.get(self.architecture) if self.architecture in MODELS.names() else None
        parameters = inspect.signature(builder).parameters.values() if builder is not None else ()
        named = {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}
        if builder is not None and "dropout" not in named and len(named) == len(parameters):
            raise ValueError(
                f"short_budget.dropout: architecture {self.architecture!r} takes no dropout argument; "
                f"leave short_budget.dropout out"
            )
        return self

    def train_size(self, epoch: int) -> int | None:
        """The side the faces of `epoch` (0-based, over all phases) are resized to; None: as they are."""
        if self.progressive is not None and epoch < self.progressive.epochs:
            return self.progressive.size
        return None

    def resolved_phases(self) -> list[Phase]:
        if self.phases:
            return list(self.phases)
        schedule = "onecycle" if self.optimizer == "sgd" else "cosine"
        return [Phase(name="train", epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, schedule=schedule)]

    def distill_share(self, epoch: int) -> float:
        """The share of each face's target taken from the model's past prediction in `epoch` (0-based,
        over all phases): 0 without self-distillation and at the first epoch, `alpha` at the last."""
        if self.self_distill is None or self.total_epochs <= 1:
            return 0.0
        return self.self_distill.alpha * epoch / (self.total_epochs - 1)

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.resolved_phases())

    @property
    def concrete_precision(self) -> str:
        """The precision this machine trains at: `auto` resolved for the config's device."""
        return resolve_precision(self.precision, self.device)

    @property
    def bf16(self) -> bool:
        return self.concrete_precision == "bf16"

    def recipe(self) -> dict:
        """The config as it trains here (precision resolved): what a checkpoint records."""
        recipe = {**self.model_dump(mode="json"), "precision": self.concrete_precision}
        # recipes and fingerprints from before these existed stay as they were
        for added in ("mix", "progressive", "self_distill", "time_budget_minutes", "short_budget", "deadline"):
            if recipe[added] is None:
                del recipe[added]
        if self.time_budget_minutes is None:  # short_budget shapes nothing without a budget
            recipe.pop("short_budget", None)
        else:  # and a budget's own deadline replaces the config's
            recipe.pop("deadline", None)
        return recipe

    def fingerprint(self) -> str:
        """Hash of everything that shapes the result, precision as resolved on this machine (bf16 and
        fp32 give different weights); a resume checkpoint must match it."""
        return hashlib.sha256(json.dumps(self.recipe(), sort_keys=True).encode()).hexdigest()[:16]
