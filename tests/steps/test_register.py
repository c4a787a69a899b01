"""The registry gate against a real MLflow registry (SQLite in a temp folder), no ZenML stack."""

from __future__ import annotations

from dataclasses import replace

import mlflow
import numpy as np
import pytest
import torch

from ferkit.data import EMOTIONS, FERDataset
from ferkit.models import TrainedModel, build_model
from ferkit.registry import promotion, publish
from ferkit.registry.decision import PromotionError
from ferkit.registry.names import GATE_PENDING, WEIGHTS_TAG
from ferkit.registry.store import ModelNotFound
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


@pytest.fixture(scope="module")
def learnable() -> FERDataset:
    """A task a tiny CNN learns (bright upper or lower half): 256 train, 200 val, 64 test faces."""
    from tests.training.test_training import two_class_faces

    parts = [two_class_faces(n, seed) for n, seed in ((256, 0), (200, 1), (64, 2))]
    images = np.concatenate([x for x, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    splits = np.repeat([0, 1, 2], [256, 200, 64])
    return FERDataset(images, labels, splits, [f"f{i}" for i in range(len(labels))])


@pytest.fixture(scope="module")
def skilled(learnable) -> TrainedModel:
    """A plain CNN trained on `learnable`: near-perfect on its val split, where an untrained one is not."""
    from ferkit.training import TrainConfig, train
    from tests.training.test_training import SMALL

    return train(TrainConfig(epochs=3, **SMALL), learnable).model


def jittered(model: TrainedModel, scale: float = 1e-5) -> TrainedModel:
    """The same predictions under other weights (another version): any gain is noise."""
    torch.manual_seed(1)
    state = {k: v + scale * torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict.items()}
    return TrainedModel(model.architecture, model.architecture_kwargs, state, recipe=model.recipe)


def untrained(model: TrainedModel, seed: int) -> TrainedModel:
    torch.manual_seed(seed)
    network = build_model(model.architecture, **model.architecture_kwargs)
    return TrainedModel(model.architecture, model.architecture_kwargs, network.state_dict(), recipe=model.recipe)


class TestGate:
    """The gate compares on val, paired, and never reads the test figures it is given."""

    def test_a_clearly_better_model_is_promoted_and_a_worse_one_is_not(self, registry, learnable, skilled):
        weak = untrained(skilled, 0)
        assert register(weak, 0.99, learnable) == "1"  # first: champion (its claimed test figure is not read)
        assert register(skilled, 0.01, learnable) == "2"
        assert (alias(registry, "champion"), alias(registry, "previous_champion")) == ("2", "1")
        tags = registry.get_model_version(NAME, "2").tags
        assert tags["promotion.decision"] == "champion" and tags["promotion.test"] == "paired bootstrap"
        assert float(tags["promotion.gain_low"]) > 0 and tags["gate.images"] == "val (200 images)"
        assert float(tags["gate.macro_f1"]) > 0.9 and tags["test.macro_f1"] == "0.010000"
        assert tags["promotion.compared_with"].startswith("champion v1, scored again on val (200 images)")
        assert register(untrained(skilled, 5), 0.99, learnable) == "3"
        assert (alias(registry, "champion"), alias(registry, "challenger")) == ("2", "3")

    def test_a_model_better_by_noise_alone_is_not_promoted(self, registry, learnable, skilled):
        register(skilled, 0.5, learnable)
        for scale in (1e-3, 3e-3, 1e-2, 3e-2):  # small changes of the weights until the val figure moves up
            candidate = jittered(skilled, scale)
            version = register(candidate, 0.5, learnable)
            tags = registry.get_model_version(NAME, version).tags
            assert tags["promotion.decision"] == "challenger" and alias(registry, "champion") == "1"
            assert float(tags["promotion.gain_low"]) <= 0 <= float(tags["promotion.gain_high"])

    def test_min_improvement_applies_to_the_lower_bound(self, registry, learnable, skilled):
        register(untrained(skilled, 0), 0.5, learnable)
        register(skilled, 0.5, learnable, min_improvement=0.99)  # a real gain, but not that large
        assert alias(registry, "champion") == "1" and alias(registry, "challenger") == "2"
        assert "does not clear 0.9900" in registry.get_model_version(NAME, "2").tags["promotion.reason"]

    def test_the_evaluations_val_probabilities_stand_in_for_scoring_again(self, registry, learnable, skilled,
                                                                          monkeypatch, capsys):  # fmt: skip
        from ferkit.inference import evaluate
        from ferkit.metrics import classification_metrics
        from ferkit.registry import publish

        held_out = evaluate(skilled, learnable, tta="ten_crop", bootstrap_resamples=5).held_out
        assert (held_out.split, held_out.mode, len(held_out.probs)) == ("val", "ten_crop", 200)
        scored_again = publish.probabilities_for

        def refuse(*_args, **_kwargs):
            raise AssertionError("the new model was scored again")

        monkeypatch.setattr(publish, "probabilities_for", refuse)
        version = register(skilled, 0.5, learnable, primary_metric="tta.ten_crop.macro_f1", val_probabilities=held_out)
        assert "come from its evaluation" in capsys.readouterr().out
        gate = float(registry.get_model_version(NAME, version).tags["gate.tta.ten_crop.macro_f1"])
        assert gate == pytest.approx(classification_metrics(learnable.split("val").labels, held_out.probs)["macro_f1"],
                                     abs=1e-6)  # fmt: skip

        # Probabilities of other weights, other views or other images are not taken: the gate scores.
        calls = []
        monkeypatch.setattr(
            publish, "probabilities_for", lambda *a: calls.append((a[0].weights_sha256(), a[2])) or scored_again(*a)
        )
        first, second, third = (jittered(skilled, scale) for scale in (1e-5, 2e-5, 3e-5))
        own = [evaluate(m, learnable, tta="ten_crop", bootstrap_resamples=5).held_out for m in (second, third)]
        register(first, 0.5, learnable, primary_metric="tta.ten_crop.macro_f1", val_probabilities=held_out)
        register(second, 0.5, learnable, primary_metric="tta.flip.macro_f1", val_probabilities=own[0])
        elsewhere = replace(own[1], fingerprint=learnable.split("test").fingerprint)
        register(third, 0.5, learnable, primary_metric="tta.ten_crop.macro_f1", val_probabilities=elsewhere)
        wanted = [(first, "tta.ten_crop.macro_f1"), (second, "tta.flip.macro_f1"), (third, "tta.ten_crop.macro_f1")]
        assert {(m.weights_sha256(), metric) for m, metric in wanted} <= set(calls)  # beside the champion's scoring
        assert "come from its evaluation" not in capsys.readouterr().out

    def test_the_test_split_never_decides(self, registry, learnable):
        with pytest.raises(ValueError, match="never reads the test split"):
            register(trained(0), 0.5, learnable, split="test")

    def test_failure_mid_registration_leaves_aliases(self, registry, data, monkeypatch):
        register(trained(0), 0.40, data)

        def broken(*args, **kwargs):
            raise RuntimeError("registry bookkeeping failed")

        monkeypatch.setattr(promotion, "mirror_to_zenml", broken)
        with pytest.raises(RuntimeError, match="bookkeeping failed"):
            register(trained(1), 0.90, data)
        assert alias(registry, "champion") == "1" and alias(registry, "challenger") is None
        assert "promotion.decision" in registry.get_model_version(NAME, "2").tags  # logged, not moved
        assert [r["decision"] for r in promotion.list_versions(NAME)] == ["unfinished", "champion"]

        # The rerun of the same weights finishes the gate on that version instead of calling it a duplicate.
        monkeypatch.undo()
        assert register(trained(1), 0.90, data, min_improvement=-1.0) == "2"  # -1: any challenger wins
        assert alias(registry, "champion") == "2" and alias(registry, "previous_champion") == "1"
        tags = registry.get_model_version(NAME, "2").tags
        assert GATE_PENDING not in tags and tags["promotion.decision"] == "champion"
        assert len(registry.search_model_versions(f"name='{NAME}'")) == 2

    def test_a_gate_cut_before_its_decision_is_finished_by_the_rerun(self, registry, data, monkeypatch, capsys):
        register(trained(0), 0.40, data)

        def unreachable(*args, **kwargs):
            raise ModelNotFound("the artifact store is unreachable")

        monkeypatch.setattr(publish, "fetch_checkpoint", unreachable)  # scoring the champion fails
        with pytest.raises(PromotionError, match="unreachable"):
            register(trained(1), 0.90, data, min_improvement=-1.0)
        assert "promotion.decision" not in registry.get_model_version(NAME, "2").tags
        monkeypatch.undo()
        assert register(trained(1), 0.90, data, min_improvement=-1.0) == "2"
        assert "deciding it now" in capsys.readouterr().out
        assert alias(registry, "champion") == "2" and GATE_PENDING not in registry.get_model_version(NAME, "2").tags
        # Decided now: a third run of the same weights is a duplicate again, and moves nothing.
        assert register(trained(1), 0.90, data, min_improvement=-1.0) == "2"
        assert "holds these weights already" in capsys.readouterr().out

    def test_a_gate_cut_after_its_aliases_moved_is_not_decided_twice(self, registry, data):
        register(trained(0), 0.40, data)
        register(trained(1), 0.90, data, min_improvement=-1.0)
        registry.set_model_version_tag(NAME, "2", GATE_PENDING, "cut before the tag went")
        assert register(trained(1), 0.90, data) == "2"  # min_improvement 0 would not promote it against itself
        assert alias(registry, "champion") == "2" and alias(registry, "previous_champion") == "1"
        assert GATE_PENDING not in registry.get_model_version(NAME, "2").tags

    def test_the_same_weights_are_registered_once(self, registry, data):
        register(trained(0), 0.50, data)
        register(jittered(trained(0)), 0.40, data)  # the same predictions: challenger
        copy = jittered(trained(0))
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

    def test_identical_runs_finishing_together_register_the_weights_once(self, registry, data, monkeypatch, capsys):
        register(trained(0), 0.40, data)
        first = register(trained(1), 0.90, data, min_improvement=-1.0)
        # The second run checked for these weights before the first had tagged them, and registered too.
        real, calls = publish.version_with_weights, []

        def checked_too_early(*args):
            calls.append(args)
            return None if len(calls) == 1 else real(*args)

        monkeypatch.setattr(publish, "version_with_weights", checked_too_early)
        with mlflow.start_run() as run:
            version = register_model.entrypoint(
                model=trained(1), test_metrics={"macro_f1": 0.9}, fer_dataset=data, registered_model_name=NAME,
                min_improvement=-1.0,
            )  # fmt: skip
        assert version == first == "2" and len(calls) == 2
        assert "v3 withdrawn, no alias moved" in capsys.readouterr().out
        assert sorted(int(v.version) for v in registry.search_model_versions(f"name='{NAME}'")) == [1, 2]
        assert alias(registry, "champion") == "2" and alias(registry, "previous_champion") == "1"
        assert registry.get_run(run.info.run_id).data.tags[promotion.DUPLICATE_OF] == f"{NAME}/2"
        assert register(trained(2), 0.45, data) == "4"  # MLflow does not reuse a deleted version's number

    def test_unknown_primary_metric_is_refused(self, registry, data):
        with pytest.raises(ValueError, match="cannot compare models on 'auc'"):
            register(trained(0), 0.4, data, primary_metric="auc")
        assert registry.search_model_versions(f"name='{NAME}'") == []  # refused before anything was written


class TestByHand:
    def test_promote_and_rollback(self, registry, data):
        register(trained(0), 0.50, data)
        register(jittered(trained(0)), 0.40, data)  # the same predictions: challenger
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
        register(jittered(trained(0)), 0.40, data)  # the same predictions: challenger
        register(jittered(trained(0)), 0.40, data)  # the same weights: no third version
        rows = promotion.list_versions(NAME)
        assert [(r["version"], r["aliases"], r["decision"], r["test_score"]) for r in rows] == [
            (2, ["challenger"], "challenger", 0.40),
            (1, ["champion"], "champion", 0.50),
        ]
        val = float(registry.get_model_version(NAME, "1").tags["gate.macro_f1"])
        assert [r["score"] for r in rows] == [pytest.approx(val, abs=1e-6)] * 2  # the figure that decided, on val
        assert rows[0]["weights_sha256"] == jittered(trained(0)).weights_sha256() and rows[0]["metric"] == "macro_f1"
        assert [r["test_score"] for r in promotion.list_versions(NAME, metric="accuracy")] == [0.40, 0.50]

        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
        cli = [sys.executable, "-m", "ferkit.cli", "versions", "--name", NAME]
        out = subprocess.run([*cli, "--json"], capture_output=True, text=True, env=env, check=True).stdout
        assert [r["version"] for r in json.loads(out)] == [2, 1]
        table = subprocess.run(cli, capture_output=True, text=True, env=env, check=True).stdout.splitlines()
        assert (
            table[1].split()[:2] == ["2", "challenger"] and table[1].split()[3] == "0.4000"
        )  # version, alias, val, test
        assert table[2].split()[:2] == ["1", "champion"]
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
        assert list(out.columns) == ["label", "confidence", "uncertain", *EMOTIONS, "error"]
        assert (out["error"] == "").all() and out["confidence"].between(0, 1).all()
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
        if alias(registry, "champion") != "2":  # whatever the gate decided, v2 is the champion here
            promotion.promote(NAME, "2")
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
    register(jittered(trained(0)), 0.40, data)  # the same predictions: challenger
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    assert cli.main(["rollback", "--name", NAME]) == 1  # the registry refused: a check failed
    assert "nothing to roll back to" in capsys.readouterr().err
    assert cli.main(["promote", "2", "--name", NAME]) == 0
    assert "v2 is now the champion (was v1" in capsys.readouterr().out
    assert cli.main(["rollback", "--name", NAME]) == 0
    assert alias(mlflow.MlflowClient(), "champion") == "1"
