"""Retraining on new labelled data: merge a batch into the champion's data, decide whether to train.

A new batch (any form `read_fer2013` reads) is split, per class and seeded, into a
held-out part, scored but never trained on, and a part that joins the training split.
Images already in the data (pixel-identical) are dropped first, so a batch merged twice
adds nothing. The validation and test splits never change: every model of the line is
chosen on the same val and compared on the same test.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS, SPLITS
from ferkit.models.checkpoint import TrainedModel
from ferkit.training.config import TrainConfig

NEW_ID_PREFIX = "new:"  # source ids of merged images: "new:<batch sha256 prefix>:<original id>"


@dataclass(frozen=True)
class Lineage:
    """Which data trained which model; goes to the registry as tags and to ZenML as metadata."""

    parent_fingerprint: str  # the champion's training data
    batch_sha256: str  # the new batch's file (or folder) hash
    batch_fingerprint: str  # its decoded content
    merged_fingerprint: str  # what the new model trains on
    batch_images: int  # images in the batch
    known_images: int  # dropped: already in the champion's data
    added_to_train: int  # new images in the training split
    held_out: int  # images of this batch kept for the held-out score
    holdout_images: int  # the whole held-out set: this batch's and the earlier batches'
    added_per_class: dict[str, int]

    @property
    def new_images(self) -> int:
        return self.added_to_train + self.held_out

    def to_dict(self) -> dict:
        return {**asdict(self), "new_images": self.new_images}

    def tags(self) -> dict[str, str]:
        """Flat string tags for the MLflow model version."""
        return {f"lineage.{k}": str(v) for k, v in self.to_dict().items() if k != "added_per_class"} | {
            f"lineage.added.{k}": str(v) for k, v in self.added_per_class.items()
        }


def empty_dataset() -> FERDataset:
    return FERDataset(
        images=np.zeros((0, 48, 48), np.uint8),
        labels=np.zeros(0, np.int64),
        splits=np.zeros(0, np.uint8),
        source_ids=np.zeros(0, str),
    )


def _pixel_keys(images: np.ndarray) -> np.ndarray:
    return np.array([hashlib.sha1(img.tobytes()).hexdigest() for img in images])


def unseen_mask(batch: FERDataset, *known: FERDataset) -> np.ndarray:
    """True for the batch images that are in none of `known` (pixel-identical), each counted once."""
    seen: set[str] = set()
    for data in known:
        seen.update(_pixel_keys(data.images).tolist())
    keys = _pixel_keys(batch.images)
    _, first = np.unique(keys, return_index=True)  # duplicates inside the batch count once
    fresh = np.zeros(len(batch), dtype=bool)
    fresh[first] = True
    return fresh & np.array([k not in seen for k in keys], dtype=bool)


def _held_out(labels: np.ndarray, fresh: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, per-class `fraction` of the `fresh` images (at least one of a class with two or more)."""
    rows = np.flatnonzero(fresh)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in range(len(EMOTIONS)):
        of_class = rows[labels[rows] == c]
        n_hold = round(fraction * len(of_class))
        if fraction > 0 and len(of_class) >= 2:
            n_hold = max(n_hold, 1)
        held[rng.permutation(of_class)[:n_hold]] = True
    return held


def merge_new_data(
    base: FERDataset,
    batch: FERDataset,
    batch_sha256: str,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    previous_holdout: FERDataset | None = None,
) -> tuple[FERDataset, FERDataset, Lineage]:
    """(merged data, held-out new images, lineage).

    Every new image, whatever split its source gave it, is either held out (a seeded,
    per-class `holdout_fraction`, at least one image of a class with two or more) or
    added to train. The held-out set, in the `test` split of its own data set, carries
    `previous_holdout` (the champion's) forward: it holds every held-out image of the
    line, and those count as known, like the images of `base`.
    """
    if not 0 <= holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    previous = previous_holdout if previous_holdout is not None else empty_dataset()
    fresh = unseen_mask(batch, base, previous)
    held = _held_out(batch.labels, fresh, holdout_fraction, seed)
    to_train = fresh & ~held

    prefix = f"{NEW_ID_PREFIX}{batch_sha256[:12]}:"
    ids = np.array([prefix + s for s in batch.source_ids.astype(str)])
    train_code, test_code = SPLITS.index("train"), SPLITS.index("test")
    added = FERDataset(
        images=batch.images[to_train],
        labels=batch.labels[to_train],
        splits=np.full(int(to_train.sum()), train_code, dtype=np.uint8),
        source_ids=ids[to_train],
    )
    merged = FERDataset(
        images=np.concatenate([base.images, added.images]),
        labels=np.concatenate([base.labels, added.labels]),
        splits=np.concatenate([base.splits, added.splits]),
        source_ids=np.concatenate([base.source_ids.astype(str), added.source_ids]),
        synthetic=np.concatenate([base.synthetic, added.synthetic]),
        report=base.report,
    )
    holdout = FERDataset(
        images=np.concatenate([previous.images, batch.images[held]]),
        labels=np.concatenate([previous.labels, batch.labels[held]]),
        splits=np.full(len(previous) + int(held.sum()), test_code, dtype=np.uint8),
        source_ids=np.concatenate([previous.source_ids.astype(str), ids[held]]),
    )
    lineage = Lineage(
        parent_fingerprint=base.fingerprint,
        batch_sha256=batch_sha256,
        batch_fingerprint=batch.fingerprint,
        merged_fingerprint=merged.fingerprint,
        batch_images=len(batch),
        known_images=int(len(batch) - fresh.sum()),
        added_to_train=int(to_train.sum()),
        held_out=int(held.sum()),
        holdout_images=len(holdout),
        added_per_class={
            name: int(n) for name, n in zip(EMOTIONS, np.bincount(batch.labels[fresh], minlength=len(EMOTIONS)))
        },
    )
    return merged, holdout, lineage


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    new_images: int
    drift_share: float | None  # None: nothing to compare (an empty batch)
    forced: bool

    def to_dict(self) -> dict:
        return asdict(self)


def decide_retraining(
    new_images: int,
    drift_share: float | None,
    force: bool = False,
    min_new_images: int = 1,
    drift_share_threshold: float = 0.5,
) -> RetrainDecision:
    """Train when forced, when the batch brings at least `min_new_images` images the champion
    has not seen, or when the batch has drifted from the champion's training data (the share
    of drifted features reaches `drift_share_threshold`); otherwise skip, saying why."""
    drifted = drift_share is not None and drift_share >= drift_share_threshold
    drift_text = (
        "no batch to compare"
        if drift_share is None
        else f"drift share {drift_share:.2f} {'>=' if drifted else '<'} {drift_share_threshold:.2f}"
    )
    if force:
        retrain, why = True, f"forced ({new_images} new images, {drift_text})"
    elif new_images >= min_new_images:
        retrain, why = (True, f"{new_images} new labelled images (at least {min_new_images}); {drift_text}")
    elif drifted:
        retrain, why = True, f"the batch drifted from the champion's training data ({drift_text})"
    else:
        retrain, why = (
            False,
            (
                f"skipped: {new_images} new images (fewer than {min_new_images}) and no drift "
                f"({drift_text}); pass force=true to train anyway"
            ),
        )
    return RetrainDecision(retrain=retrain, reason=why, new_images=new_images, drift_share=drift_share, forced=force)


# What a fine-tune changes by default: a short, gentle schedule from the champion's weights.
FINETUNE_OVERRIDES = {
    "phases": [
        {"name": "finetune", "epochs": 6, "lr": 3e-4, "optimizer": "adamw", "schedule": "cosine", "trainable": ["all"]}
    ]
}


def retrain_config(champion: TrainedModel, overrides: dict | None = None) -> TrainConfig:
    """The champion's recipe with `overrides` (default `FINETUNE_OVERRIDES`); the architecture must
    stay the champion's, since retraining starts from its weights."""
    overrides = FINETUNE_OVERRIDES if overrides is None else overrides
    for key in ("architecture", "architecture_kwargs"):
        if key in overrides and overrides[key] != champion.recipe.get(key, getattr(champion, key)):
            raise ValueError(
                f"retraining warm-starts from the champion, so `{key}` cannot change "
                f"({champion.recipe.get(key)!r} -> {overrides[key]!r}); train anew with fer_training"
            )
    # The champion's time budget and deadline were for its whole training (its phases already
    # shortened to the budget); a fine-tune runs on its own schedule unless the overrides give it one.
    whole_training = ("time_budget_minutes", "deadline")
    recipe = {k: v for k, v in champion.recipe.items() if k in TrainConfig.model_fields and k not in whole_training}
    return TrainConfig(**{**recipe, **overrides})
