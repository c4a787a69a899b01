"""Image statistics, embeddings and the Evidently drift report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ferkit.models import build_model
from ferkit.quality.drift import IMAGE_FEATURES, drift_report, embed, embedding_components, image_statistics


class TestImageStatistics:
    def test_known_values(self):
        flat = np.full((48, 48), 100, np.uint8)
        halves = np.zeros((48, 48), np.uint8)
        halves[:, 24:] = 255
        stats = image_statistics(np.stack([flat, halves]))
        assert list(stats.columns) == list(IMAGE_FEATURES)
        assert stats.loc[0, "mean"] == 100 and stats.loc[0, "std"] == 0
        assert stats.loc[0, "entropy"] == 0 and stats.loc[0, "sharpness"] == 0 and stats.loc[0, "contrast"] == 0
        assert stats.loc[1, "entropy"] == pytest.approx(1.0)  # two equally likely values: one bit
        assert stats.loc[1, "contrast"] == pytest.approx(255)
        assert stats.loc[1, "sharpness"] > 0


def _frames(shift: float, n: int = 800, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(rng.normal(0, 1, (n, 3)), columns=["a", "b", "c"])
    cur = pd.DataFrame(rng.normal(0, 1, (n, 3)), columns=["a", "b", "c"])
    cur["b"] += shift
    return ref, cur


class TestDriftReport:
    def test_shifted_feature_is_the_one_flagged(self, tmp_path):
        ref, cur = _frames(shift=1.0)
        result = drift_report(ref, cur, tmp_path / "drift.html")
        assert result.drifted == ["b"]
        assert result.p_values["b"] < 1e-6 and result.p_values["a"] > 0.001
        assert result.drift_share == pytest.approx(1 / 3)
        assert (tmp_path / "drift.html").stat().st_size > 10_000
        assert set(result.metrics()) == {"drift_share", "p_value.a", "p_value.b", "p_value.c"}

    def test_same_distribution_does_not_drift(self):
        ref, cur = _frames(shift=0.0)
        result = drift_report(ref, cur)
        assert result.drifted == [] and result.drift_share == 0

    def test_too_few_rows_is_refused(self):
        ref, cur = _frames(shift=0.0)
        with pytest.raises(ValueError, match="at least 2 rows"):
            drift_report(ref, cur.iloc[:1])


def test_embeddings_and_components():
    model = build_model("plain_cnn", widths=[8, 8, 8, 16])
    images = np.random.default_rng(0).integers(0, 255, (20, 48, 48), dtype=np.uint8)
    features = embed(model, images)
    assert features.shape == (20, 16)
    ref, cur = embedding_components(features, features[:5], n_components=4)
    assert list(ref.columns) == ["emb_pc1", "emb_pc2", "emb_pc3", "emb_pc4"] and len(cur) == 5
    np.testing.assert_allclose(ref.mean().to_numpy(), 0, atol=1e-4)  # centred on the reference
