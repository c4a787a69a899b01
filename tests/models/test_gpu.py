"""GPU readiness, run where CUDA is available (`-m gpu`); skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.data.augment import AugmentConfig, augment_batch
from ferkit.models import build_model
from ferkit.training import Phase, TrainConfig, fit

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_augmentation_runs_on_the_device():
    x = torch.rand(8, 1, 48, 48, device="cuda")
    out = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert out.device.type == "cuda" and out.shape == x.shape


def test_paper_model_trains_a_step_in_bf16_channels_last():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(32, 48, 48), dtype=np.uint8)
    y = rng.integers(0, 7, size=32)
    config = TrainConfig(
        architecture="hybrid",
        architecture_kwargs={"backbone": "resnet50", "input_size": 224},
        phases=[Phase(name="all", epochs=1, lr=1e-4)],
        batch_size=16,
        device="cuda",
        precision="bf16",
        channels_last=True,
        early_stopping_patience=None,
    )
    model = build_model(config.architecture, **config.architecture_kwargs)
    result = fit(model, x, y, x[:8], y[:8], config)
    assert next(model.parameters()).device.type == "cuda"
    assert np.isfinite(result.history[0]["train.loss"])
    assert all(v.device.type == "cpu" for v in result.state_dict.values())  # checkpoints stay portable
