"""The registry gate against a real MLflow registry (SQLite in a temp folder), no ZenML stack."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch

from ferkit.data import EMOTIONS, FERDataset
from ferkit.models import TrainedModel, build_model
from ferkit.registry import promotion
from ferkit.registry.names import WEIGHTS_TAG
from steps.register.register_model import register_model
from tests.factories import face

NAME = "fer_emotion_test"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    # An explicit artifact location: SQLite stores default to ./mlruns in the working directory.
    mlflow.MlflowClient().create_experiment("gate", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("gate")
    yield mlflow.MlflowClient()
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri("")


@pytest.fixture(scope="module")
def data() -> FERDataset:
    n = 7 * 3 * 3
    return FERDataset(
        np.stack([face(i) for i in range(n)]),
        np.arange(n) % 7,
        np.repeat([0, 1, 2], n // 3),
        [f"i{i}" for i in range(n)],
    )


def trained(seed: int) -> TrainedModel:
    torch.manual_seed(seed)
    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    return TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict())


def register(model, score: float, data, **kw) -> str:
    with mlflow.start_run():
        return register_model.entrypoint(
            model=model,
            test_metrics={"macro_f1": score, "accuracy": score},
            fer_dataset=data,
            registered_model_name=NAME,
            **kw,
        )


def alias(client, name: str) -> str | None:
    version = promotion.version_by_alias(client, NAME, name)
    return None if version is None else str(version.version)


class TestGate:
    def test_first_model_wins_then_better_wins_then_worse_is_challenger(self, registry, data):
        assert register(trained(0), 0.40, data) == "1"
        assert alias(registry, "champion") == "1"
        assert register(trained(1), 0.45, data) == "2"
        assert (alias(registry, "champion"), alias(registry, "previous_champion")) == ("2", "1")
        assert register(trained(2), 0.44, data) == "3"
        assert (alias(registry, "champion"), alias(registry, "challenger")) == ("2", "3")
        tags = registry.get_model_version(NAME, "3").tags
        assert tags["promotion.decision"] == "challenger"
        assert float(tags["promotion.champion_score"]) == pytest.approx(0.45)
        assert tags["promotion.champion_score_source"].startswith("champion's registry tag")

    def test_min_improvement_is_respected(self, registry, data):
        register(trained(0), 0.40, data)
        register(trained(1), 0.405, data, min_improvement=0.01)
        assert alias(registry, "champion") == "1" and alias(registry, "challenger") == "2"

    def test_failure_mid_registration_leaves_aliases(self, registry, data, monkeypatch):
        register(trained(0), 0.40, data)

        def broken(*args, **kwargs):
            raise RuntimeError("registry bookkeeping failed")

        monkeypatch.setattr(promotion, "mirror_to_zenml", broken)
        with pytest.raises(RuntimeError, match="bookkeeping failed"):
            register(trained(1), 0.90, data)
        assert alias(registry, "champion") == "1" and alias(registry, "challenger") is None
        assert "promotion.decision" in registry.get_model_version(NAME, "2").tags  # logged, not moved

    def test_champion_scored_on_another_split_is_rescored(self, registry, data):
        register(trained(0), 0.99, data)  # claimed score, on this split
        other = FERDataset(data.images[::-1].copy(), data.labels, data.splits, data.source_ids)
        register(trained(1), 0.0, other)  # a new test split: the champion is scored again
        tags = registry.get_model_version(NAME, "2").tags
        assert tags["promotion.champion_score_source"] == "champion re-scored on this test split"
        assert float(tags["promotion.champion_score"]) < 0.99  # its real score, not its tag

    def test_a_rescored_figure_is_kept_for_the_next_run(self, registry, data, monkeypatch):
        register(trained(0), 0.99, data)
        other = FERDataset(data.images[::-1].copy(), data.labels, data.splits, data.source_ids)
        register(trained(1), 0.0, other)
        rescored = registry.get_model_version(NAME, "2").tags["promotion.champion_score"]
        kept = registry.get_model_version(NAME, "1").tags
        assert kept[promotion.rescored_tag("macro_f1", other.split("test").fingerprint)] == rescored
        assert kept["test.macro_f1"] == "0.990000"  # the figure it was registered with stays

        def no_scoring(*args, **kwargs):
            raise AssertionError("the champion was scored again")

        monkeypatch.setattr("ferkit.registry.publish.evaluate", no_scoring)
        register(trained(2), 0.0, other)
        tags = registry.get_model_version(NAME, "3").tags
        assert tags["promotion.champion_score_source"].startswith("champion's re-scored tag")
        assert tags["promotion.champion_score"] == rescored
        with pytest.raises(AssertionError, match="scored again"):  # another metric is not cached
            register(trained(3), 0.0, other, primary_metric="accuracy")

    def test_the_same_weights_are_registered_once(self, registry, data):
        register(trained(0), 0.50, data)
        register(trained(1), 0.40, data)  # challenger
        copy = trained(1)
        copy.history = [{"epoch": 1, "seconds": 3.0}]  # a re-run: same weights, other timings
        with mlflow.start_run() as run:
            assert (
                register_model.entrypoint(
                    model=copy,
                    test_metrics={"macro_f1": 0.99, "accuracy": 0.99},
                    fer_dataset=data,
                    registered_model_name=NAME,
                )
                == "2"
            )
        assert sorted(int(v.version) for v in registry.search_model_versions(f"name='{NAME}'")) == [1, 2]
        assert alias(registry, "champion") == "1" and alias(registry, "challenger") == "2"  # nothing moved
        assert registry.get_run(run.info.run_id).data.tags[promotion.DUPLICATE_OF] == f"{NAME}/2"
        tags = registry.get_model_version(NAME, "2").tags
        assert tags[WEIGHTS_TAG] == copy.weights_sha256() and tags["test.macro_f1"] == "0.400000"
        assert register(trained(2), 0.45, data) == "3"  # other weights still register

    def test_unknown_primary_metric_is_refused(self, registry, data):
        with pytest.raises(ValueError, match="primary_metric 'auc'"):
            register(trained(0), 0.4, data, primary_metric="auc")


class TestByHand:
    def test_promote_and_rollback(self, registry, data):
        register(trained(0), 0.50, data)
        register(trained(1), 0.40, data)  # challenger
        old = promotion.promote(NAME, "2", reason="manual test")
        assert str(old.version) == "1"
        assert (alias(registry, "champion"), alias(registry, "previous_champion")) == ("2", "1")
        assert promotion.rollback(NAME) == ("2", "1")
        assert alias(registry, "champion") == "1" and alias(registry, "previous_champion") is None

    def test_versions_are_listed_newest_first_with_aliases_and_figures(self, registry, data):
        import json
        import os
        import subprocess
        import sys

        register(trained(0), 0.50, data)
        register(trained(1), 0.40, data)  # challenger
        register(trained(1), 0.40, data)  # the same weights: no third version
        rows = promotion.list_versions(NAME)
        assert [(r["version"], r["aliases"], r["decision"], r["score"]) for r in rows] == [
            (2, ["challenger"], "challenger", 0.40),
            (1, ["champion"], "champion", 0.50),
        ]
        assert rows[0]["weights_sha256"] == trained(1).weights_sha256() and rows[0]["metric"] == "macro_f1"
        assert [r["score"] for r in promotion.list_versions(NAME, metric="accuracy")] == [0.40, 0.50]

        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
        cli = [sys.executable, "-m", "ferkit.cli", "versions", "--name", NAME]
        out = subprocess.run([*cli, "--json"], capture_output=True, text=True, env=env, check=True).stdout
        assert [r["version"] for r in json.loads(out)] == [2, 1]
        table = subprocess.run(cli, capture_output=True, text=True, env=env, check=True).stdout.splitlines()
        assert table[1].split()[:3] == ["2", "challenger", "0.4000"] and table[2].split()[:2] == ["1", "champion"]
        missing = subprocess.run([*cli[:-1], "no_such_model"], capture_output=True, text=True, env=env, check=False)
        assert missing.returncode == 3 and "no registered model 'no_such_model'" in missing.stderr

    def test_clear_errors(self, registry, data):
        register(trained(0), 0.50, data)
        with pytest.raises(promotion.ModelNotFound, match="no version '9'"):
            promotion.promote(NAME, "9")
        with pytest.raises(promotion.PromotionError, match="already the champion"):
            promotion.promote(NAME, "1")
        with pytest.raises(promotion.PromotionError, match="nothing to roll back to"):
            promotion.rollback(NAME)


def astronaut_png() -> bytes:
    """A real 512x512 RGB photo with a face (scikit-image ships it; works offline)."""
    import io

    from PIL import Image
    from skimage import data as skdata

    buffer = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buffer, format="PNG")
    return buffer.getvalue()


class TestPyfunc:
    def test_registered_pyfunc_takes_any_image_and_returns_labelled_probabilities(self, registry, data):
        import pandas as pd

        from ferkit.data import EMOTIONS

        register(trained(0), 0.5, data)
        model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
        gray48 = np.asarray(face(3), np.uint8)
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(gray48).save(buffer, format="PNG")
        out = model.predict(pd.DataFrame({"image": [astronaut_png(), buffer.getvalue()]}))
        assert list(out.columns) == ["label", *EMOTIONS, "error"] and (out["error"] == "").all()
        assert set(out["label"]) <= set(EMOTIONS)
        np.testing.assert_allclose(out[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-5)
        # The same face as a 48x48 array, and a 60x50 array, through `pixels`.
        arrays = model.predict(pd.DataFrame({"pixels": [gray48.astype(int).tolist(), np.full((60, 50), 90).tolist()]}))
        np.testing.assert_allclose(
            arrays.loc[0, list(EMOTIONS)].to_numpy(float), out.loc[1, list(EMOTIONS)].to_numpy(float), atol=1e-5
        )
        assert len(arrays) == 2


class TestResolveModelURI:
    def test_local_fast_path_and_mlflow_path_agree(self, registry, data, monkeypatch):
        from ferkit.registry import store

        register(trained(0), 0.5, data)
        register(trained(1), 0.6, data)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
        fast = store.local_checkpoint(f"models:/{NAME}@champion")
        assert fast is not None and fast.name == "ferkit_model.pt"
        by_alias = store.load_trained_model(f"models:/{NAME}@champion")
        by_number = store.load_trained_model(f"models:/{NAME}/2")
        monkeypatch.setattr(store, "local_checkpoint", lambda uri: None)  # force the MLflow client path
        via_mlflow = store.load_trained_model(f"models:/{NAME}@champion")
        for key, tensor in via_mlflow.state_dict.items():
            torch.testing.assert_close(by_alias.state_dict[key], tensor)
            torch.testing.assert_close(by_number.state_dict[key], tensor)
        expected = trained(1).state_dict
        torch.testing.assert_close(via_mlflow.state_dict["head.3.weight"], expected["head.3.weight"])

    def test_unknown_alias_is_a_clear_error(self, registry, data, monkeypatch):
        from ferkit.registry import store

        register(trained(0), 0.5, data)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
        assert store.local_checkpoint(f"models:/{NAME}@production") is None
        with pytest.raises(store.ModelNotFound, match="does not resolve"):
            store.load_trained_model(f"models:/{NAME}@production")


def test_evaluate_defaults_to_the_views_the_registry_gated_on(registry, data, monkeypatch, tmp_path):
    """`ferkit evaluate models:/...` without --tta scores with the version's gate mode, so it reproduces the
    registry's figures; --json carries the per-class table and the confusion matrix."""
    import json
    import os
    import subprocess
    import sys

    from ferkit.registry import store
    from tests.factories import image_tree, write_zip

    metrics = {"macro_f1": 0.5, "accuracy": 0.5, "tta.multi_scale.macro_f1": 0.5}
    with mlflow.start_run():
        register_model.entrypoint(model=trained(0), test_metrics=metrics, fer_dataset=data,
                                  registered_model_name=NAME, primary_metric="tta.multi_scale.macro_f1")  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    assert store.registered_tta(f"models:/{NAME}@champion") == "multi_scale"
    monkeypatch.setattr(store, "_local_version", lambda uri: None)  # the MLflow client path agrees
    assert store.registered_tta(f"models:/{NAME}/1") == "multi_scale"

    archive = write_zip(tmp_path / "d.zip", image_tree(2))
    command = [sys.executable, "-m", "ferkit.cli", "evaluate", "--model", f"models:/{NAME}@champion",
               "--data", str(archive), "--json", "--bootstrap", "5"]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["tta"] == "multi_scale"
    assert [row["emotion"] for row in out["per_class"]] == list(EMOTIONS)
    assert sum(row["support"] for row in out["per_class"]) == out["images"] == 14
    counts = np.array(out["confusion_matrix"]["counts"])
    assert counts.shape == (7, 7) and counts.sum() == 14 and list(counts.sum(axis=1)) == [2] * 7
    assert out["confusion_matrix"]["labels"] == list(EMOTIONS)
    recall = [row["recall"] for row in out["per_class"]]
    assert np.allclose(recall, np.diag(counts) / counts.sum(axis=1))


def test_cli_promote_and_rollback(registry, data, monkeypatch, capsys):
    from ferkit import cli

    register(trained(0), 0.50, data)
    register(trained(1), 0.40, data)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    assert cli.main(["rollback", "--name", NAME]) == 1  # the registry refused: a check failed
    assert "nothing to roll back to" in capsys.readouterr().err
    assert cli.main(["promote", "2", "--name", NAME]) == 0
    assert "v2 is now the champion (was v1" in capsys.readouterr().out
    assert cli.main(["rollback", "--name", NAME]) == 0
    assert alias(mlflow.MlflowClient(), "champion") == "1"
