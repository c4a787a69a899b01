"""GAN oversampling of minority emotions: targets, the trained generator, synthetic rows.

A target names how many training images a class should have once synthetic faces
are added: `"3x"` is three times its real training images, an integer is a total
count. Synthetic faces join the train split only, marked in `FERDataset.synthetic`
and named `synthetic/<emotion>/<n>`; validation and test never see one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS, SPLITS
from ferkit.files import atomic_write
from ferkit.gan.models import Generator
from ferkit.gan.train import GANConfig, StepCallback, generate, train_gan
from ferkit.runtime import resolve_precision

FORMAT_VERSION = 1
_FACTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")


class OversampleError(ValueError):
    """The oversampling targets cannot be met with this data."""


def parse_target(emotion: str, target: int | str, real: int) -> int:
    """Total training images `emotion` should reach: `"3x"` -> 3 * real, `1500` -> 1500."""
    if isinstance(target, bool):
        raise OversampleError(f"oversample.targets.{emotion}: {target!r} is neither a count nor a factor like '3x'")
    if isinstance(target, int):
        if target < 1:
            raise OversampleError(f"oversample.targets.{emotion}: a count must be positive, got {target}")
        return target
    match = _FACTOR.match(str(target))
    if match is None:
        raise OversampleError(f"oversample.targets.{emotion}: {target!r} is neither a count nor a factor like '3x'")
    factor = float(match.group(1))
    if factor < 1:
        raise OversampleError(f"oversample.targets.{emotion}: factor {target!r} is below 1x; nothing to add")
    return round(factor * real)


class OversampleConfig(BaseModel):
    """Which classes get synthetic faces and how the GAN that makes them is trained."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # off unless a config turns it on: the data passes through, no GAN is trained
    targets: dict[str, int | str] = Field(default_factory=lambda: {"disgust": "3x"})  # emotion -> "Nx" or a total
    min_images_per_class: int = Field(50, ge=1)  # a targeted class with fewer real train images is an error
    gan: GANConfig = Field(default_factory=GANConfig)  # the conditional GAN (trained on all real train faces)
    seed: int = 0  # noise seed of the synthetic faces

    @field_validator("targets")
    @classmethod
    def _known_emotions(cls, value: dict[str, int | str]) -> dict[str, int | str]:
        for emotion, target in value.items():
            if emotion not in EMOTIONS:
                raise ValueError(f"oversample.targets: unknown emotion {emotion!r}; expected one of {list(EMOTIONS)}")
            parse_target(emotion, target, real=1)  # the form; the counts are checked against the data
        return value


def plan_synthetic(class_counts: dict[str, int], config: OversampleConfig) -> dict[str, int]:
    """Synthetic faces to add per targeted emotion, given the real training images per emotion."""
    plan = {}
    for emotion, target in config.targets.items():
        real = class_counts.get(emotion, 0)
        if real < config.min_images_per_class:
            raise OversampleError(
                f"oversample: class {emotion!r} has {real} real training images, fewer than "
                f"min_images_per_class={config.min_images_per_class}; the GAN cannot learn it"
            )
        plan[emotion] = max(0, parse_target(emotion, target, real) - real)
    return plan


@dataclass
class TrainedGenerator:
    """The generator kept for sampling, with the config and history that made it."""

    config: dict  # GANConfig, JSON form
    state_dict: dict[str, torch.Tensor]
    emotions: tuple[str, ...] = EMOTIONS  # label order of the conditioning classes
    history: list[dict] = field(default_factory=list)  # losses every `log_every` steps
    seconds: float = 0.0  # training time

    def build(self) -> Generator:
        gan = GANConfig(**self.config)
        generator = Generator(len(self.emotions), gan.z_dim, gan.width)
        generator.load_state_dict(self.state_dict)
        return generator.eval()

    def save(self, path: str | Path) -> None:
        """Written atomically (unique temporary name, fsync, rename): a reader never sees half of it."""
        payload = {
            "format": FORMAT_VERSION,
            "config": self.config,
            "state_dict": self.state_dict,
            "emotions": list(self.emotions),
            "history": self.history,
            "seconds": self.seconds,
        }
        atomic_write(path, lambda file: torch.save(payload, file))

    @classmethod
    def load(cls, path: str | Path) -> TrainedGenerator:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: not a ferkit generator checkpoint (format {FORMAT_VERSION})")
        return cls(
            config=payload["config"],
            state_dict=payload["state_dict"],
            emotions=tuple(payload["emotions"]),
            history=payload["history"],
            seconds=payload["seconds"],
        )


def real_training_faces(dataset: FERDataset) -> FERDataset:
    """The faces a GAN may learn from: the train split, without earlier synthetic ones."""
    return dataset.subset(dataset.split_mask("train") & ~dataset.synthetic)


def fit_generator(
    dataset: FERDataset, config: GANConfig, callbacks: Sequence[StepCallback] = (), progress: bool = True
) -> TrainedGenerator:
    """Train the conditional GAN on the real training faces of every emotion."""
    train = real_training_faces(dataset)
    result = train_gan(
        train.images, train.labels, config, num_classes=len(EMOTIONS), callbacks=callbacks, progress=progress
    )
    state = {k: v.detach().cpu().clone() for k, v in result.generator.state_dict().items()}
    return TrainedGenerator(
        config={**config.model_dump(mode="json"), "precision": resolve_precision(config.precision, config.device)},
        state_dict=state,
        history=result.history,
        seconds=result.seconds,
    )


def add_synthetic(dataset: FERDataset, images: np.ndarray, labels: np.ndarray) -> FERDataset:
    """`dataset` plus the synthetic faces, in the train split and marked synthetic."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} synthetic images for {len(labels)} labels")
    numbers = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        numbers[labels == c] = np.arange(int((labels == c).sum()))
    ids = np.array([f"synthetic/{EMOTIONS[c]}/{n:06d}" for c, n in zip(labels, numbers)], dtype=str)
    train = SPLITS.index("train")
    return FERDataset(
        images=np.concatenate([dataset.images, images]),
        labels=np.concatenate([dataset.labels, labels]),
        splits=np.concatenate([dataset.splits, np.full(len(labels), train, dtype=np.uint8)]),
        source_ids=np.concatenate([dataset.source_ids, ids]),
        synthetic=np.concatenate([dataset.synthetic, np.ones(len(labels), dtype=bool)]),
        report=dataset.report,
    )


def synthetic_labels(plan: dict[str, int]) -> np.ndarray:
    """The labels of the plan's synthetic faces, in the order `synthesize` makes them."""
    return np.concatenate(
        [np.full(n, EMOTIONS.index(e), dtype=np.int64) for e, n in plan.items()] or [np.zeros(0, dtype=np.int64)]
    )


def synthesize(generator: TrainedGenerator, plan: dict[str, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces and labels for the plan, deterministic for a seed."""
    labels = synthetic_labels(plan)
    return generate(generator.build(), labels, seed=seed), labels


def oversample(
    dataset: FERDataset, config: OversampleConfig, callbacks: Sequence[StepCallback] = (), progress: bool = True
) -> tuple[FERDataset, TrainedGenerator | None, dict[str, int]]:
    """The data set with synthetic faces for the targeted emotions, the generator and the plan.

    Disabled, or with nothing to add, the data set comes back unchanged and no GAN is trained.
    """
    if not config.enabled:
        return dataset, None, {}
    plan = plan_synthetic(real_training_faces(dataset).class_counts(), config)
    if not any(plan.values()):
        return dataset, None, plan
    generator = fit_generator(dataset, config.gan, callbacks=callbacks, progress=progress)
    images, labels = synthesize(generator, plan, seed=config.seed)
    return add_synthetic(dataset, images, labels), generator, plan
