"""Training throughput of a recipe: images per second through `train_one_epoch`, as `fit` feeds it."""

from __future__ import annotations

import numpy as np
import torch

from ferkit.data.labels import IMAGE_SIZE
from ferkit.models import build_model
from ferkit.models.ema import model_ema
from ferkit.runtime import keep_freed_memory, resolve_device, seed_everything
from ferkit.training.config import TrainConfig
from ferkit.training.epoch import EpochSetup, class_repeats, make_optimizer, train_one_epoch


def training_throughput(
    config: TrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    batches: int,
    warm_up: int = 3,
    size: int | None = None,
    ema: bool = False,
) -> dict:
    """Images per second (and the share spent waiting for data) of `batches` training steps of the
    recipe's model, optimizer, augmentation and precision, after `warm_up` steps that pay for
    allocation; with `size`, on faces resized to that side (progressive resizing's early epochs);
    with `ema`, updating the recipe's weight average after every step as `fit` does.
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
    setup = EpochSetup(model, device_images, labels, config, generator, repeats=class_repeats(config), ema=average)
    figures = train_one_epoch(setup, optimizer, scheduler, "measure", size=size)
    return {
        "images_per_second": figures["train.images_per_second"],
        "data_wait_share": figures["train.data_wait_share"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "precision": config.concrete_precision,
        "channels_last": config.channels_last,
        "image_size": size or IMAGE_SIZE,
    }
