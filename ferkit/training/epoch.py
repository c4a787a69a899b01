"""One pass over the training split, and the per-phase set-up it needs: which parameters
train, with which optimizer and schedule."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm.auto import tqdm

from ferkit.data.augment import augment_batch, mix_batch
from ferkit.data.labels import EMOTIONS
from ferkit.models.predict import to_input
from ferkit.runtime import progress_disabled
from ferkit.stopping import raise_if_stop_requested
from ferkit.training import distributed
from ferkit.training.config import ALL, Phase, TrainConfig
from ferkit.training.distributed import Workers

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


def class_repeats(config: TrainConfig) -> np.ndarray:
    """Copies per epoch of each class's images, in EMOTIONS order (1 unless `class_repeats` says)."""
    repeats = np.ones(len(EMOTIONS), dtype=np.int64)
    for emotion, copies in config.class_repeats.items():
        repeats[EMOTIONS.index(emotion)] = copies
    return repeats


def epoch_order(labels: np.ndarray, repeats: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Shuffled indices with each image of class k present `repeats[k]` times."""
    index = np.repeat(np.arange(len(labels)), repeats[labels])
    return index[torch.randperm(len(index), generator=generator).numpy()]


@dataclass
class EpochSetup:
    """What every epoch of one training shares."""

    model: nn.Module
    images: np.ndarray | torch.Tensor  # uint8 (N, 48, 48), on the model's device in `fit`
    labels: np.ndarray
    config: TrainConfig
    generator: torch.Generator  # drives shuffling and augmentation
    class_weights: torch.Tensor | None = None  # per-class loss weights on the device
    repeats: np.ndarray = field(default_factory=lambda: np.ones(len(EMOTIONS), dtype=np.int64))
    ema: torch.optim.swa_utils.AveragedModel | None = None  # updated after every step
    workers: Workers = distributed.SINGLE
    # Self-distillation: each face's probabilities the last time it trained unmixed, (N, 7) on the
    # device (its one-hot label before that); None without it. `distill_share` is the epoch's blend.
    past: torch.Tensor | None = None
    distill_share: float = 0.0

    def batches(self) -> list[np.ndarray]:
        order = epoch_order(self.labels, self.repeats, self.generator)
        size = self.config.batch_size
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        if self.config.max_batches_per_epoch is not None:
            batches = batches[: self.config.max_batches_per_epoch]
        if self.workers.distributed:  # a global batch smaller than the world would leave a rank without images
            batches = [b for b in batches if len(b) >= self.workers.world_size]
        return batches


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None, smoothing: float):
    return F.cross_entropy(logits, y, weight=weights, reduction="none", label_smoothing=smoothing)


def past_predictions(labels: np.ndarray, config: TrainConfig, device: torch.device) -> torch.Tensor | None:
    """The table self-distillation starts from: each face's one-hot label, (N, 7) float32 on `device`,
    so a face not trained on yet is taught its label alone; None without self-distillation."""
    if config.self_distill is None:
        return None
    return F.one_hot(torch.as_tensor(labels, dtype=torch.long), len(EMOTIONS)).float().to(device)


def distilled_targets(y: torch.Tensor, past: torch.Tensor, share: float, smoothing: float) -> torch.Tensor:
    """Targets (B, 7): the label (smoothed, when asked) blended with the face's past prediction `past`
    (B, 7), which weighs `share`."""
    hard = F.one_hot(y, len(EMOTIONS)).float() * (1 - smoothing) + smoothing / len(EMOTIONS)
    return (1 - share) * hard + share * past


def _soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Cross-entropy against probability targets, per image, weighed by the class of its label."""
    per_image = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)  # (B,)
    return per_image * weights[y] if weights is not None else per_image


def _train_step(
    setup: EpochSetup,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    idx: np.ndarray,
    size: int | None = None,
) -> tuple[float, int, int, float]:
    """One optimizer step on the batch `idx`, its faces resized to `size` px when given; returns
    (loss x images, correct, images, seconds of data work)."""
    config, workers, weights = setup.config, setup.workers, setup.class_weights
    device = next(setup.model.parameters()).device
    data_start = time.perf_counter()
    x = augment_batch(to_input(setup.images[idx]).to(device), config.augment.to_config(), setup.generator)
    y = torch.as_tensor(setup.labels[idx]).to(device, non_blocking=True)
    # Mixing pairs images of the global batch: every rank mixes it alike, then takes its slice.
    partner, share = None, 1.0
    if config.mix is not None:
        x, partner, share = mix_batch(x, config.mix.to_config(), setup.generator)
    y_partner = y[partner.to(device)] if partner is not None else y
    if size is not None:  # progressive resizing: augmented at 48 px, then shrunk with antialiasing
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    # The denominator of the weighted mean over the *global* batch (what F.cross_entropy divides by).
    if weights is None:
        total_weight = torch.tensor(float(len(idx)))
    elif partner is None:
        total_weight = weights[y].sum()
    else:
        total_weight = share * weights[y].sum() + (1 - share) * weights[y_partner].sum()
    rows = torch.as_tensor(idx, device=device)
    rows_partner = rows[partner.to(device)] if partner is not None else rows
    if workers.distributed:
        mine = torch.as_tensor(workers.shard(idx), device=device)
        x, y, y_partner = x[mine], y[mine], y_partner[mine]
        rows, rows_partner = rows[mine], rows_partner[mine]
    x = x.contiguous(memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    data_seconds = time.perf_counter() - data_start
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        logits = net(x)  # (B, 7)
    if setup.past is None:
        per_image = _cross_entropy(logits.float(), y, weights, config.label_smoothing)
        if share < 1:  # the partner's label weighs what its pixels are of the image
            per_image = share * per_image + (1 - share) * _cross_entropy(
                logits.float(), y_partner, weights, config.label_smoothing
            )
    else:
        per_image = _soft_cross_entropy(
            logits.float(), distilled_targets(y, setup.past[rows], setup.distill_share, config.label_smoothing),
            y, weights,
        )  # fmt: skip
        if share < 1:
            partner_targets = distilled_targets(
                y_partner, setup.past[rows_partner], setup.distill_share, config.label_smoothing
            )
            per_image = share * per_image + (1 - share) * _soft_cross_entropy(
                logits.float(), partner_targets, y_partner, weights
            )
    loss = per_image.sum() / total_weight * workers.world_size  # DDP divides by the world size
    regularization = getattr(setup.model, "regularization", None)
    if regularization is not None:
        loss = loss + regularization()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    if setup.ema is not None:
        setup.ema.update_parameters(setup.model)
    if setup.past is not None and share == 1:  # a mixed image's prediction is no face's
        # Every rank records the whole global batch, so the tables stay alike.
        predicted = distributed.gather_shards(F.softmax(logits.detach().float(), dim=1), len(idx), workers)
        setup.past[torch.as_tensor(idx, device=device)] = predicted
    correct = int((logits.argmax(dim=1) == y).sum())  # under mixing: against each face's own label
    return loss.item() / workers.world_size * len(idx), correct, len(y), data_seconds


def train_one_epoch(
    setup: EpochSetup,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    desc: str = "epoch",
    net: nn.Module | None = None,
    size: int | None = None,
) -> dict[str, float]:
    """One pass over shuffled, augmented training images (resized to `size` px when given); returns
    loss, accuracy and data-wait share.

    `net` is what forward passes go through (DDP over the model when distributed). Every rank
    augments the whole global batch from the shared generator and trains on its slice; the
    loss is normalised by the global batch's total weight, so the averaged gradient equals
    one process's on the whole batch. The returned figures are summed over ranks.
    """
    net = net if net is not None else setup.model
    setup.model.train()
    freeze_frozen_batchnorm(setup.model)
    loss_sum, correct, seen, data_seconds = 0.0, 0, 0, 0.0
    start = time.perf_counter()
    bar = tqdm(
        setup.batches(),
        desc=desc,
        unit="batch",
        leave=False,
        mininterval=2.0,
        disable=progress_disabled() or not setup.workers.is_main,
    )
    for idx in bar:
        raise_if_stop_requested()
        loss, right, images, waited = _train_step(setup, net, optimizer, scheduler, idx, size)
        loss_sum, correct, seen, data_seconds = (loss_sum + loss, correct + right, seen + images, data_seconds + waited)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    total = time.perf_counter() - start
    loss_sum, correct, seen = distributed.sum_across([loss_sum, float(correct), float(seen)], setup.workers)
    return {
        "train.loss": loss_sum / max(seen, 1),
        "train.accuracy": correct / max(seen, 1),
        "train.images_per_second": seen / max(total, 1e-9),
        "train.data_wait_share": data_seconds / max(total, 1e-9),
    }
