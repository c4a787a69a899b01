"""Training throughput of a recipe: images per second through `train_one_epoch`, as `fit` feeds it."""

from __future__ import annotations

import numpy as np
import torch

from ferkit.data.labels import IMAGE_SIZE
from ferkit.models import build_model
from ferkit.models.ema import model_ema
from ferkit.runtime import keep_freed_memory, resolve_device, seed_everything
from ferkit.training.config import TrainConfig
from ferkit.training.epoch import EpochSetup, class_repeats, make_optimizer, past_predictions, train_one_epoch

# Where a training step's time goes, by the operators' own CPU time: name fragments -> group.
OPERATOR_GROUPS = {
    "convolution_backward": ("convolution_backward",),
    "convolution": ("convolution", "conv2d"),
    "batch_norm": ("batch_norm",),
    "dropout_masks": ("bernoulli",),
    "matrix_products": ("aten::mm", "aten::bmm", "aten::addmm", "aten::linear", "aten::baddbmm"),
    "pooling": ("pool",),
    "casts_and_copies": ("aten::copy_", "aten::_to_copy"),
}


def training_throughput(
    config: TrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    batches: int,
    warm_up: int = 3,
    size: int | None = None,
    ema: bool = False,
    profile: bool = False,
) -> dict:
    """Images per second (and the share spent waiting for data) of `batches` training steps of the
    recipe's model, optimizer, augmentation and precision, after `warm_up` steps that pay for
    allocation; with `size`, on faces resized to that side (progressive resizing's early epochs);
    with `ema`, updating the recipe's weight average after every step as `fit` does; with `profile`,
    also the share of the measured steps' CPU time each group of operators takes (`operator_shares`,
    by `OPERATOR_GROUPS`; the profiler's own cost slows those steps a little).
    `images` (N, 48, 48) uint8 and `labels` (N,) are the faces it draws batches from."""
    keep_freed_memory()  # as fit() does
    config = config.model_copy(update={"max_batches_per_epoch": batches})
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    model = build_model(config.architecture, **config.architecture_kwargs).to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    phase = config.resolved_phases()[0]
    optimizer, scheduler = make_optimizer(list(model.parameters()), phase, config.weight_decay, batches * 2)
    device_images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # as fit() holds them
    warm = config.model_copy(update={"max_batches_per_epoch": warm_up})
    train_one_epoch(
        EpochSetup(model, device_images, labels, warm, generator, repeats=class_repeats(warm)),
        optimizer,
        scheduler,
        "warm-up",
        size=size,
    )
    average = model_ema(model, config.ema_decay) if ema and config.ema_decay is not None else None
    setup = EpochSetup(
        model, device_images, labels, config, generator, repeats=class_repeats(config), ema=average,
        past=past_predictions(labels, config, device),  # self-distillation's soft targets, as fit() keeps them
    )  # fmt: skip
    setup.distill_share = config.distill_share(config.total_epochs - 1)
    if profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            figures = train_one_epoch(setup, optimizer, scheduler, "measure", size=size)
        shares = {"operator_shares": operator_shares(profiler.key_averages())}
    else:
        figures = train_one_epoch(setup, optimizer, scheduler, "measure", size=size)
        shares = {}
    return {
        "images_per_second": figures["train.images_per_second"],
        "data_wait_share": figures["train.data_wait_share"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "precision": config.concrete_precision,
        "channels_last": config.channels_last,
        "image_size": size or IMAGE_SIZE,
        **shares,
    }


def operator_shares(averages) -> dict[str, float]:
    """Each `OPERATOR_GROUPS` group's share of the operators' self CPU time (the rest: `other`),
    from a profiler's `key_averages()`."""
    totals = dict.fromkeys([*OPERATOR_GROUPS, "other"], 0.0)
    for event in averages:
        if not event.key.startswith("aten::"):
            continue  # autograd and optimizer wrappers: their operators are counted themselves
        group = next((g for g, parts in OPERATOR_GROUPS.items() if any(p in event.key for p in parts)), "other")
        totals[group] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {group: round(total / whole, 4) for group, total in totals.items()}
