"""Training throughput and where a step's time goes (`ferkit.training.speed`)."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.training import TrainConfig
from ferkit.training.speed import OPERATOR_GROUPS, training_throughput
from tests.factories import TINY_HYBRID

FACES = np.random.default_rng(0).integers(0, 256, size=(96, 48, 48)).astype(np.uint8)
LABELS = np.arange(96) % 7


def tiny(**changes) -> TrainConfig:
    settings = dict(
        architecture="hybrid",
        architecture_kwargs={**TINY_HYBRID, "dropout": 0.3},
        batch_size=16,
        epochs=1,
        use_class_weights=False,
        num_threads=2,
    )
    return TrainConfig(**{**settings, **changes})


def test_a_profiled_measurement_splits_the_steps_operator_time_among_the_groups():
    figures = training_throughput(tiny(), FACES, LABELS, batches=3, warm_up=1, profile=True)

    shares = figures["operator_shares"]
    assert list(shares) == [*OPERATOR_GROUPS, "other"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=0.002)
    assert all(0 <= share <= 1 for share in shares.values())
    # A convolutional trunk: its convolutions, forward and backward, take a real part of a step,
    # and the head's dropout and the transformer block's draw masks every step.
    assert shares["convolution"] > 0.02 and shares["convolution_backward"] > 0.02
    assert shares["dropout_masks"] > 0
    assert shares["matrix_products"] > 0
    assert figures["images_per_second"] > 0


def test_a_model_without_dropout_draws_no_masks():
    kwargs = {**TINY_HYBRID, "dropout": 0.0, "transformer": False}
    figures = training_throughput(tiny(architecture_kwargs=kwargs), FACES, LABELS, batches=2, warm_up=1, profile=True)

    assert figures["operator_shares"]["dropout_masks"] == 0


def test_an_unprofiled_measurement_has_no_shares():
    figures = training_throughput(tiny(), FACES, LABELS, batches=2, warm_up=1)

    assert "operator_shares" not in figures
