"""GPU readiness, run where CUDA is available (`-m gpu`); skipped elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ferkit.data.augment import AugmentConfig, augment_batch
from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.gan.oversample import OversampleConfig, oversample
from ferkit.gan.quality import QualityConfig, assess
from ferkit.inference.evaluation import evaluate
from ferkit.models import build_model
from ferkit.models.checkpoint import TrainedModel
from ferkit.training import Phase, TrainConfig, fit, train

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


PAPER = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/paper.yaml").read_text())["steps"]


def _faces(per_class: int, seed: int = 0) -> FERDataset:
    """Random faces of every emotion: `per_class` each in train, a quarter as many in val and test."""
    rng = np.random.default_rng(seed)
    counts = [per_class, max(per_class // 4, 2), max(per_class // 4, 2)]
    labels = np.concatenate([np.repeat(np.arange(len(EMOTIONS)), n) for n in counts])
    splits = np.concatenate([np.full(n * len(EMOTIONS), s) for s, n in enumerate(counts)])
    images = rng.integers(0, 256, size=(len(labels), 48, 48), dtype=np.uint8)
    return FERDataset(images, labels, splits, [f"f{i}" for i in range(len(labels))])


def test_paper_gan_and_its_quality_judge_run_on_the_device():
    """configs/paper.yaml's oversampling (its GAN and judge settings, few steps) on CUDA."""
    data = _faces(16)
    settings = PAPER["oversample_minority"]["parameters"]
    config = OversampleConfig(
        **{**settings["config"], "gan": {**settings["config"]["gan"], "steps": 4, "log_every": 2}}
    )
    config.min_images_per_class = 2
    grown, generator, plan = oversample(data, config, progress=False)
    assert plan == {"disgust": 32} and generator.config["precision"] == "bf16"
    assert grown.synthetic.sum() == 32 and grown.images.dtype == np.uint8
    assert all(v.device.type == "cpu" for v in generator.state_dict.values())  # a portable artifact
    quality = QualityConfig(**{**settings["quality"], "judge_epochs": 1, "judge_max_batches": 2,
                               "samples_per_class": 8, "kid_subset_size": 4})  # fmt: skip
    result = assess(generator, data, quality, emotions=("disgust",))
    disgust = result.report["classes"]["disgust"]
    assert np.isfinite(disgust["fid"]) and 0 <= disgust["copy_share"] <= 1


def test_paper_training_phases_and_evaluation_run_on_the_device():
    """configs/paper.yaml's recipe (every phase, one short epoch each) trained, calibrated and
    evaluated on CUDA; the model it gives back loads on a CPU."""
    raw = PAPER["train_model"]["parameters"]["config"]
    raw = {**raw, "architecture_kwargs": {**raw["architecture_kwargs"], "weights": "none"}, "batch_size": 16,
           "max_batches_per_epoch": 2, "phases": [{**p, "epochs": 1} for p in raw["phases"]]}  # fmt: skip
    config = TrainConfig(**raw)
    data = _faces(8)
    training = train(config, data, class_weights=[1.0] * len(EMOTIONS))
    history = training.result.history
    assert [h["train.phase"] for h in history] == list(range(len(raw["phases"])))  # one epoch of each
    trainable = [h["train.trainable_parameters"] for h in history]
    assert trainable[0] < trainable[1] < trainable[2] < trainable[3] and trainable[4] < trainable[3]
    assert all(np.isfinite(h["train.loss"]) for h in history)
    model = training.model
    assert model.recipe["precision"] == "bf16" and model.recipe["device"] in ("auto", "cuda")
    assert all(v.device.type == "cpu" for v in model.state_dict.values())
    assert 0.05 <= model.temperature <= 20
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = evaluate(model, data, split="val", tta_modes=("none", "flip", "multi_view"), bootstrap_resamples=10)
    assert torch.cuda.max_memory_allocated() > before  # scored on the device, not on the CPU beside it
    assert 0 <= result.metrics["macro_f1"] <= 1 and np.isfinite(result.metrics["log_loss"])
    cpu = TrainedModel(**{**vars(model)}).build()  # the checkpoint builds on a machine without CUDA
    assert next(cpu.parameters()).device.type == "cpu"
