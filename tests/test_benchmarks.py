"""The research benchmarks on a tiny generated archive: the ablation scores PublicTest beside
PrivateTest on every seed, and a rerun trains only what is missing."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.benchmarks import bench_ablation, bench_class_offsets, bench_gan
from tests.factories import image_tree, write_zip

ROOT = Path(__file__).resolve().parents[1]

TINY_HYBRID = {
    "architecture": "hybrid",
    "architecture_kwargs": {
        "backbone": "fer_vgg",
        "backbone_options": {"widths": [8, 8, 16, 16]},
        "weights": "none",
        "input_size": 48,
        "dim": 16,
        "heads": 2,
        "hidden": 16,
    },
    "phases": [{"name": "train", "epochs": 3, "lr": 0.002, "optimizer": "adamw", "schedule": "onecycle"}],
    "batch_size": 16,
    "tta_flip": True,
    "seed": 0,
}


@pytest.fixture
def setup(tmp_path):
    archive = write_zip(tmp_path / "fer.zip", image_tree(per_class=3))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "steps": {
                    "compute_class_weights": {"parameters": {"method": "inverse_frequency", "power": 0.5}},
                    "train_model": {"parameters": {"config": TINY_HYBRID}},
                    "evaluate_model": {"parameters": {"tta": "multi_scale"}},
                }
            }
        )
    )
    return archive, config, tmp_path / "ablation.json"


def run(archive, config, out, rows: str, seeds: str, epochs: int = 1) -> dict:
    argv = ["--data", str(archive), "--config", str(config), "--out", str(out)]
    assert bench_ablation.main([*argv, "--epochs", str(epochs), "--rows", rows, "--seeds", seeds]) == 0
    return json.loads(out.read_text())["results"]


class TestAblation:
    def test_every_row_is_scored_on_both_splits_for_each_seed(self, setup):
        results = run(*setup, rows="full,no_branches", seeds="0,1")
        assert [(r["row"], r["seed"]) for r in results["runs"]] == [
            ("full", 0),
            ("full", 1),
            ("no_branches", 0),
            ("no_branches", 1),
        ]
        assert results["modes"] == ["flip", "multi_scale"]
        assert results["class_weights"] == {"method": "inverse_frequency", "power": 0.5}
        for r in results["runs"]:
            assert r["epochs"] == 1 and r["config"]["seed"] == r["seed"]
            for split in ("val", "test"):
                for mode in ("flip", "multi_scale"):
                    figures = r["scores"][split][mode]
                    assert 0 <= figures["balanced_accuracy"] <= 1 and figures["log_loss"] > 0
                    assert 0 <= figures["disgust_recall"] <= 1 and 0 <= figures["fear_recall"] <= 1
        # The two seeds train different networks.
        full = [r for r in results["runs"] if r["row"] == "full"]
        assert full[0]["scores"]["val"]["flip"] != full[1]["scores"]["val"]["flip"]
        # The summary's difference is the mean of the per-seed differences, split by split.
        by = {(r["row"], r["seed"]): r["scores"] for r in results["runs"]}
        for key in ("val.multi_scale.macro_f1", "test.flip.log_loss"):
            split, mode, figure = key.split(".")
            expected = sum(by[("no_branches", s)][split][mode][figure] - by[("full", s)][split][mode][figure]
                           for s in (0, 1)) / 2  # fmt: skip
            assert results["summary"]["no_branches"][key]["minus_full"] == pytest.approx(expected, abs=1e-4)
            values = [by[("full", s)][split][mode][figure] for s in (0, 1)]
            assert results["summary"]["full"][key]["mean"] == pytest.approx(sum(values) / 2, abs=1e-4)
            assert "minus_full" not in results["summary"]["full"][key]

    def test_a_rerun_trains_only_the_missing_runs_and_a_table_measured_otherwise_is_kept(self, setup):
        archive, config, out = setup
        first = run(archive, config, out, rows="full", seeds="0")
        second = run(archive, config, out, rows="full,no_attention", seeds="0")
        assert [(r["row"], r["seed"]) for r in second["runs"]] == [("full", 0), ("no_attention", 0)]
        assert second["runs"][0] == first["runs"][0]  # kept, not trained again
        assert second["summary"]["no_attention"]["paired_seeds"] == [0]
        assert {"cpus", "cpu", "isa"} <= set(second["runs"][1]["machine"])
        kept = out.read_text()
        with pytest.raises(SystemExit, match="The file is kept"):
            run(archive, config, out, rows="full", seeds="0", epochs=2)  # another budget
        edited = yaml.safe_load(config.read_text())
        edited["steps"]["compute_class_weights"]["parameters"]["power"] = 1.0
        config.write_text(yaml.safe_dump(edited))
        with pytest.raises(SystemExit, match="'power': 0.5"):
            run(archive, config, out, rows="full", seeds="1")  # other class weights
        assert out.read_text() == kept
        edited["steps"]["compute_class_weights"]["parameters"]["power"] = 0.5
        edited["steps"]["train_model"]["parameters"]["config"]["batch_size"] = 8
        config.write_text(yaml.safe_dump(edited))
        with pytest.raises(SystemExit, match="'recipe'"):
            run(archive, config, out, rows="full", seeds="0")  # the config's recipe changed
        assert out.read_text() == kept
        edited["steps"]["train_model"]["parameters"]["config"]["batch_size"] = 16
        edited["steps"]["train_model"]["parameters"]["config"]["seed"] = 5
        config.write_text(yaml.safe_dump(edited))
        assert run(archive, config, out, rows="full", seeds="0")["runs"] == second["runs"]  # the seed is not

    def test_a_run_cut_short_continues_from_its_last_epoch_and_ends_as_an_uninterrupted_one(
        self, setup, monkeypatch, tmp_path
    ):
        import ferkit.training

        archive, config, out = setup
        monkeypatch.setenv("FERKIT_HOME", str(tmp_path / "home"))
        whole = run(archive, config, out, rows="full", seeds="0", epochs=3)["runs"][0]
        real_fit = ferkit.training.fit

        def cut_after_epoch_2(*args, **kwargs):  # a session ending mid-run
            def stop(epoch, metrics):
                if epoch == 2:
                    raise KeyboardInterrupt

            return real_fit(*args, **kwargs, callbacks=[stop])

        monkeypatch.setattr(ferkit.training, "fit", cut_after_epoch_2)
        again = tmp_path / "again.json"
        with pytest.raises(KeyboardInterrupt):
            run(archive, config, again, rows="full", seeds="0", epochs=3)
        states = list(bench_ablation.resume_folder().glob("train-*.pt"))
        assert [s.parent for s in states] == [tmp_path / "home" / "bench" / "resume"]  # under the ferkit home
        monkeypatch.setattr(ferkit.training, "fit", real_fit)
        resumed = run(archive, config, again, rows="full", seeds="0", epochs=3)["runs"][0]
        assert resumed["resumed"] and "resumed" not in whole
        assert resumed["scores"] == whole["scores"] and resumed["best_epoch"] == whole["best_epoch"]
        assert not states[0].exists()  # removed once the run is scored

    def test_an_unknown_row_is_refused_before_any_training(self, setup):
        archive, config, out = setup
        with pytest.raises(SystemExit, match="unknown row 'no_such_part'"):
            run(archive, config, out, rows="full,no_such_part", seeds="0")
        assert not out.exists()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (["seeds"], "--seeds 0,1,2 "),
        (["seeds", "SEEDS=0,2"], "--seeds 0,2 "),
        (["ablation"], "--epochs 16 --seeds 0,1 "),
        (["gan-ablation"], "--variants without_gan,with_gan,weights_matched "),
        (["gan-ablation", "EPOCHS=10", "SEEDS=3"], "gan-10-epochs.json"),
        (["gan-ablation", "OUT=/tmp/gan-bf16.json"], "--out /tmp/gan-bf16.json"),
        (["gan-ablation", "TRAINED_HOMES=/tmp/full"], "--trained-homes /tmp/full "),
        (["ablation", "OUT=/tmp/a.json"], "--out /tmp/a.json"),
        (["seeds", "OUT=/tmp/s.json"], "--out /tmp/s.json"),
        (["class-offsets"], "--seeds 0,1,2 "),
        (["ablation-full"], "epochs=36; seeds=0,1; "),
        (["ablation-full", "ROWS=full,no_branches"], "for row in full no_branches; do "),
        (["ablation-full"], "--write-config $row --out $folder/$row.yaml --from-seeds $folder; "),
        (["ablation-full"], "bench_seeds.py --config $folder/$row.yaml --seeds $seeds "),
        # Training one more seed gathers every seed the rows' files hold, not only the new one.
        (["ablation-full", "SEEDS=1"], "bench_ablation.py --epochs $epochs --from-seeds $folder --out "),
    ],
)
def test_the_makefile_passes_whole_comma_lists_as_defaults(target, expected):
    """`$(or $(SEEDS),0,1,2)` would pass only "0": make splits its arguments at commas."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # What the test run itself was given (`make test SEEDS=3`, an exported EPOCHS) stays out.
    given = {
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "SEEDS",
        "EPOCHS",
        "ROWS",
        "VARIANTS",
        "CONFIG",
        "OUT",
        "TRAINED_HOMES",
    }
    env = {k: v for k, v in os.environ.items() if k not in given}
    shown = subprocess.run(["make", "-n", "-s", *target], cwd=root, capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    assert expected in " ".join(shown.stdout.replace("\\\n", " ").split()) + " "


class TestSeeds:
    """`make seeds` continues an interrupted seed from its resume state instead of starting it over."""

    def seeded(self, seed: int) -> dict:
        from tests.benchmarks import bench_seeds

        return bench_seeds.seed_config({"steps": {"train_model": {"parameters": {"config": TINY_HYBRID}}}}, seed)

    def interrupt(self, home, seed: int):
        """Leave in `home` a state where the trainer itself keeps the resume state of `seed`'s training."""
        from types import SimpleNamespace

        from ferkit.training.config import TrainConfig
        from ferkit.training.train import resume_path

        config = TrainConfig(**self.seeded(seed)["steps"]["train_model"]["parameters"]["config"])
        state = resume_path(home / "resume", config, SimpleNamespace(fingerprint="data"), [1.0] * 7)
        state.parent.mkdir(parents=True)
        state.write_bytes(b"state")
        return state

    def test_the_state_an_interrupted_training_left_is_found_and_make_train_runs_without_fresh(self, tmp_path):
        from tests.benchmarks import bench_seeds

        home = tmp_path / "seed2"
        assert bench_seeds.resume_states(home, self.seeded(2)) == []
        state = self.interrupt(home, 2)
        assert bench_seeds.resume_states(home, self.seeded(2)) == [state]
        assert bench_seeds.resume_states(home, self.seeded(3)) == []  # another seed's training: start over
        command = bench_seeds.train_command(tmp_path / "c.yaml", home, resume=True)
        assert "FRESH=1" not in command and f"FERKIT_HOME={home}" in command
        assert "FRESH=1" in bench_seeds.train_command(tmp_path / "c.yaml", home, resume=False)

    def test_a_seed_from_scratch_gets_an_empty_home_and_an_interrupted_one_keeps_its_own(self, tmp_path):
        from tests.benchmarks import bench_seeds

        root = tmp_path / "seeds"
        home, resume, moved = bench_seeds.prepare_home(root, 0, self.seeded(0))
        assert (home, resume, moved) == (root / "seed0", False, None) and home.is_dir()
        (home / "zenml").mkdir()
        (home / "zenml" / "registry").write_text("another config's champion")
        home, resume, moved = bench_seeds.prepare_home(root, 0, self.seeded(0))
        assert not resume and list(home.iterdir()) == []
        assert (moved / "zenml" / "registry").read_text() == "another config's champion"  # kept, not deleted
        self.interrupt(root / "seed2", 2)
        home, resume, moved = bench_seeds.prepare_home(root, 2, self.seeded(2))
        assert resume and moved is None and (home / "resume").is_dir()

    def test_score_only_trains_nothing_names_a_home_without_a_model_and_keeps_one_tta_a_file(
        self, tmp_path, monkeypatch, fer_zip
    ):
        from tests.benchmarks import bench_seeds

        def no_training(*args, **kwargs):
            raise AssertionError("--score-only must not train")

        monkeypatch.setattr(bench_seeds, "train_seed", no_training)
        monkeypatch.setenv("FER2013_PATH", str(fer_zip))
        root, out = tmp_path / "seeds", tmp_path / "tta.json"
        (root / "seed0").mkdir(parents=True)  # a home, but nothing trained in it
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"steps": {"train_model": {"parameters": {"config": TINY_HYBRID}}}}))
        argv = ["bench_seeds", "--config", str(config), "--seeds", "0,1", "--root", str(root), "--out", str(out)]
        monkeypatch.setattr("sys.argv", [*argv, "--score-only", "--tta", "multi_view"])
        assert bench_seeds.main() == 1
        report = json.loads(out.read_text())
        assert report["results"]["tta"] == "multi_view"
        rows = {r["seed"]: r for r in report["results"]["rows"]}
        assert rows[0]["scored_only"] and "test" not in rows[0]
        assert rows[0]["error"].startswith(f"no model scored in {root / 'seed0'}: ")
        assert "Traceback" not in rows[0]["error"]
        assert "does not exist" in rows[1]["error"] and not (root / "seed1").exists()  # nothing created
        # The file holds one TTA mode: scoring another into it is refused and the file kept.
        before = out.read_bytes()
        monkeypatch.setattr("sys.argv", [*argv, "--score-only", "--tta", "flip"])
        assert bench_seeds.main() == 2
        assert out.read_bytes() == before

    def test_a_new_scoring_setting_keeps_the_trained_seeds_and_a_training_change_trains_again(
        self, tmp_path, monkeypatch, capsys
    ):
        from tests.benchmarks import bench_seeds

        trained = []

        def fake_training(config_path, home, log, bar, resume=False):  # records; the run "fails" fast
            trained.append(yaml.safe_load(config_path.read_text()))
            return 1, 0.0

        monkeypatch.setattr(bench_seeds, "train_seed", fake_training)
        config = {
            "steps": {
                "train_model": {"parameters": {"config": TINY_HYBRID}},
                "evaluate_model": {"parameters": {"tta": "multi_view"}},
                "register_model": {"parameters": {"primary_metric": "tta.multi_scale.macro_f1"}},
            }
        }
        scored = {"accuracy": 0.7, "balanced_accuracy": 0.7, "macro_f1": 0.7, "log_loss": 0.8, "recall": {}}
        out, root, path = tmp_path / "seeds_multi_view.json", tmp_path / "seeds", tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        out.write_text(json.dumps({
            "training_sha256": bench_seeds.training_fingerprint(config),
            "precision": bench_seeds.trained_precision(config),
            "results": {"tta": "multi_view", "rows": [{"seed": 0, "val": scored, "test": scored}]},
        }))  # fmt: skip
        argv = ["bench_seeds", "--config", str(path), "--seeds", "0", "--root", str(root), "--out", str(out)]
        monkeypatch.setattr("sys.argv", argv)

        config["steps"]["register_model"]["parameters"]["primary_metric"] = "tta.multi_view.macro_f1"
        config["steps"]["report_drift"] = {"parameters": {"sample_size": 100}}
        path.write_text(yaml.safe_dump(config))
        assert bench_seeds.main() == 0 and trained == []  # the gate's metric changes no weight
        assert json.loads(out.read_text())["results"]["test"]["macro_f1"]["mean"] == 0.7
        assert json.loads(out.read_text())["config"] == str(path)  # outside the repository: its full path
        monkeypatch.setattr(bench_seeds, "ROOT", tmp_path)  # a config of the repository is named from its root
        assert bench_seeds.main() == 0 and json.loads(out.read_text())["config"] == "c.yaml"
        monkeypatch.setattr(bench_seeds, "ROOT", ROOT)

        # The same config on a machine where `auto` resolves to another precision trains other weights.
        here = bench_seeds.trained_precision(config)
        monkeypatch.setattr(bench_seeds, "trained_precision", lambda c: {"fp32": "bf16"}.get(here, "fp32"))
        before = out.read_bytes()
        assert bench_seeds.main() == 2 and trained == []
        assert out.read_bytes() == before
        assert "holds seeds trained in " + here in capsys.readouterr().err
        monkeypatch.setattr(bench_seeds, "trained_precision", lambda c: here)

        config["steps"]["train_model"]["parameters"]["config"] = {**TINY_HYBRID, "batch_size": 32}
        path.write_text(yaml.safe_dump(config))
        assert bench_seeds.main() == 2 and trained == []  # another training's seeds: refused, kept
        assert out.read_bytes() == before
        monkeypatch.setattr("sys.argv", [*argv[:-1], str(tmp_path / "seeds_other.json")])
        assert bench_seeds.main() == 1  # in its own file seed 0 trains again (and here fails)
        assert [t["steps"]["train_model"]["parameters"]["config"]["batch_size"] for t in trained] == [32]

    def test_a_seed_trained_on_another_kind_of_cpu_is_said_and_the_file_lists_the_kinds(
        self, tmp_path, monkeypatch, capsys
    ):
        from tests.benchmarks import bench_seeds
        from tests.benchmarks.report import cpu_kind, machine

        scored = {"accuracy": 0.7, "balanced_accuracy": 0.7, "macro_f1": 0.7, "log_loss": 0.8, "recall": {}}
        monkeypatch.setattr(bench_seeds, "train_seed", lambda *args, **kwargs: (0, 1.0))
        monkeypatch.setattr(bench_seeds, "score", lambda home, data, split, tta: scored)
        config = {"steps": {"train_model": {"parameters": {"config": TINY_HYBRID}}}}
        out, root, path = tmp_path / "seeds.json", tmp_path / "seeds", tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        elsewhere = {"cpus": 2, "cpu": "Another CPU", "isa": ["avx2"]}
        out.write_text(json.dumps({
            "training_sha256": bench_seeds.training_fingerprint(config),
            "precision": bench_seeds.trained_precision(config),
            "results": {"tta": "flip", "rows": [{"seed": 0, "machine": elsewhere, "val": scored, "test": scored}]},
        }))  # fmt: skip
        argv = ["bench_seeds", "--config", str(path), "--seeds", "0,1", "--root", str(root), "--out", str(out)]
        monkeypatch.setattr("sys.argv", argv)
        assert bench_seeds.main() == 0
        said = capsys.readouterr()
        here = cpu_kind(machine())
        assert f"seed 1 trains on {here}; the file's other seeds trained on Another CPU [avx2]" in said.out + said.err
        report = json.loads(out.read_text())
        assert report["results"]["kinds_of_cpu"] == sorted([here, "Another CPU [avx2]"])
        assert [r["seed"] for r in report["results"]["rows"]] == [0, 1]  # seed 0 kept, not trained again

        # A seed of the kind the file already holds says nothing.
        monkeypatch.setattr("sys.argv", [*argv[:4], "2", *argv[5:]])
        assert bench_seeds.main() == 0
        said = capsys.readouterr()
        assert "trains on" not in said.out + said.err
        assert json.loads(out.read_text())["results"]["kinds_of_cpu"] == sorted([here, "Another CPU [avx2]"])


class TestClassOffsets:
    """Decision offsets are judged on faces their fit never saw: a real skew is found, noise is not."""

    @staticmethod
    def model(n: int, fear_shift: float, seed: int):
        """Labels and probabilities of a model whose log probability of fear is moved by `fear_shift`."""
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 7, n)
        logits = 1.2 * np.eye(7)[labels] + rng.normal(0, 1.0, (n, 7))
        logits[:, bench_class_offsets.FEAR] += fear_shift
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return labels, probs

    def test_a_model_that_shuns_fear_gains_on_held_out_faces_and_the_offset_points_to_fear(self):
        labels, probs = self.model(3000, fear_shift=-1.0, seed=0)
        counts = np.full(7, 1000.0)
        log_probs = np.log(probs)
        gain = bench_class_offsets.cross_fitted_gain("fear", labels, log_probs, counts)
        assert gain["macro_f1"] > 1.5 and gain["balanced_accuracy"] > 1.0
        offsets = bench_class_offsets.fit_offsets("per_class", labels, log_probs, counts)
        assert offsets.argmax() == bench_class_offsets.FEAR and offsets[bench_class_offsets.FEAR] > 0.5

    def test_offsets_fitted_to_noise_gain_only_on_the_faces_they_were_fitted_on(self):
        labels, probs = self.model(1500, fear_shift=0.0, seed=1)  # nothing to correct
        counts = np.array([4000, 400, 4000, 7000, 5000, 3000, 5000], dtype=float)
        log_probs, figures = np.log(probs), bench_class_offsets.figures
        for family in bench_class_offsets.FAMILIES:
            held_out = bench_class_offsets.cross_fitted_gain(family, labels, log_probs, counts)["macro_f1"]
            offsets = bench_class_offsets.fit_offsets(family, labels, log_probs, counts)
            in_sample = (
                figures(labels, log_probs, offsets)["macro_f1"] - figures(labels, log_probs, 0 * offsets)["macro_f1"]
            )
            assert held_out < 0.3 and held_out <= in_sample, family
            if family == "per_class":  # seven free offsets overfit the faces they see
                assert in_sample > 2 > 0 > held_out

    def test_the_study_reports_the_test_split_with_offsets_fitted_on_val_alone(self):
        val, test = self.model(1200, -1.0, seed=2), self.model(1200, -1.0, seed=3)
        out = bench_class_offsets.study(val, test, np.full(7, 1000.0))
        assert set(out) == {"test_without_offsets", "per_class", "fear", "logit_adjustment"}
        fear = out["fear"]
        assert fear["test_with_offsets"]["fear_recall"] > out["test_without_offsets"]["fear_recall"] + 10
        # Fitted on val only: val's own fit is what is applied to test.
        fitted = bench_class_offsets.fit_offsets("fear", val[0], np.log(val[1]), np.full(7, 1000.0))
        assert fear["offsets_fitted_on_all_val"] == [round(float(o), 3) for o in fitted]
        with pytest.raises(ValueError, match="unknown family"):
            bench_class_offsets.fit_offsets("mystery", val[0], np.log(val[1]), np.full(7, 1000.0))


@pytest.mark.slow
def test_a_run_make_train_trained_is_scored_from_its_home_as_the_benchmark_would_train_it(
    tmp_path, capsys, monkeypatch
):
    """`make gan-ablation` takes its without-GAN runs from the `make seeds` homes: the real `make train`
    in a home, scored there, gives the row the benchmark's own training gives; another seed, other
    data, other class weights, another recipe, GAN faces or a home without a champion are not taken."""
    from tqdm.auto import tqdm

    from ferkit.data import EMOTIONS, read_fer2013
    from ferkit.data.weights import class_weights
    from tests.benchmarks import bench_seeds

    archive = write_zip(tmp_path / "fer.zip", image_tree(per_class=12))
    smoke = yaml.safe_load((bench_ablation.ROOT / "configs/smoke.yaml").read_text())
    tiny = {**TINY_HYBRID, "phases": [{**TINY_HYBRID["phases"][0], "epochs": 2}]}
    steps = smoke["steps"]
    steps["oversample_minority"]["parameters"]["config"]["enabled"] = False
    steps["compute_class_weights"]["parameters"] = {"method": "inverse_frequency", "power": 0.5}
    steps["train_model"]["parameters"]["config"] = tiny
    steps["evaluate_model"] = {"parameters": {"tta": "multi_scale"}}
    smoke["parameters"]["data_path"] = str(archive)
    home = tmp_path / "seeds" / "seed0"
    home.mkdir(parents=True)
    run_config = home / "tiny_seed0.yaml"
    run_config.write_text(yaml.safe_dump(bench_seeds.seed_config(smoke, 0)))
    code, _ = bench_seeds.train_seed(run_config, home, home / "train.log", tqdm(disable=True))
    assert code == 0, (home / "train.log").read_text()[-3000:]
    assert (home / "repo" / ".zen").is_dir()  # the home's own ZenML repository, not the checkout's

    train_raw, weight_params, tta = bench_ablation.settings(run_config)
    modes = ("flip", tta)
    assert tta == "multi_scale"
    data = read_fer2013(archive, progress=False)
    config = {**train_raw, "seed": 0}
    weights = class_weights(data.split("train").labels, **weight_params).as_list()

    def taken(home=home, config=config, data=data, weights=weights, archive=archive):
        return bench_ablation.trained_row("full", home, config, data, weights, modes, str(archive))

    def refusal(**given) -> str:
        """What the benchmark says when `given` is not the run the home holds (it trains it then)."""
        capsys.readouterr()
        assert taken(**given) is None
        said = capsys.readouterr().out
        assert said.endswith("; training it\n"), said
        return said

    row = taken()
    assert row is not None and row["trained_by"].startswith(f"make train in {home} (tiny_seed0.yaml)")
    trained_here = bench_ablation.run_row("full", config, data, weights, modes)
    assert row["scores"] == trained_here["scores"]
    assert (row["best_epoch"], row["epochs"], row["parameters"]) == (
        trained_here["best_epoch"], trained_here["epochs"], trained_here["parameters"],
    )  # fmt: skip

    # Not the run `make train` trained: another seed, other class weights, other data.
    assert "tiny_seed0.yaml: trains " in refusal(config={**config, "seed": 1})
    assert "tiny_seed0.yaml: class weights " in refusal(weights=[2.0] + weights[1:])
    other = write_zip(tmp_path / "other.zip", image_tree(per_class=11))
    other_data = read_fer2013(other, progress=False)  # the same class weights: the registry tag tells them apart
    assert class_weights(other_data.split("train").labels, **weight_params).as_list() == weights
    assert "the champion trained on data " in refusal(data=other_data, archive=other)
    # A run config in the home that says another recipe: the champion's own recipe decides.
    changed = {**config, "lr": 0.5}
    other_recipe = bench_seeds.seed_config(smoke, 0)
    other_recipe["steps"]["train_model"]["parameters"]["config"] = changed
    (home / "edited.yaml").write_text(yaml.safe_dump(other_recipe))
    assert "the champion trained recipe " in refusal(config=changed)
    (home / "edited.yaml").unlink()
    # A home whose run config adds GAN faces, and a home with no champion (a seed cut short).
    gan_home, empty_home = tmp_path / "seeds" / "gan", tmp_path / "seeds" / "empty"
    with_gan = bench_seeds.seed_config(smoke, 0)
    with_gan["steps"]["oversample_minority"]["parameters"]["config"]["enabled"] = True
    for folder, run in ((gan_home, with_gan), (empty_home, bench_seeds.seed_config(smoke, 0))):
        folder.mkdir()
        (folder / "tiny_seed0.yaml").write_text(yaml.safe_dump(run))
    assert "tiny_seed0.yaml: adds GAN faces to train" in refusal(home=gan_home)
    assert "no champion to score" in refusal(home=empty_home) or "scoring its champion failed" in refusal(
        home=empty_home
    )

    # `make gan-ablation`'s benchmark: the without-GAN run comes from the home, the GAN runs train.
    out = tmp_path / "gan.json"
    argv = ["--data", str(archive), "--config", str(run_config), "--epochs", "2", "--seeds", "0", "--out", str(out)]
    assert bench_gan.main([*argv, "--variants", "without_gan,with_gan", "--trained-homes", str(home.parent)]) == 0
    results = json.loads(out.read_text())["results"]
    runs = {r["variant"]: r for r in results["runs"]}
    assert runs["without_gan"]["trained_by"].startswith(f"make train in {home}")
    assert runs["without_gan"]["scores"] == row["scores"]
    assert "trained_by" not in runs["with_gan"] and runs["with_gan"]["synthetic_images"] > 0
    assert results["gan"]["0"]["added"] == {"disgust": 12}  # smoke.yaml's 2x of 12 training faces
    assert "minus_without_gan" in results["summary"]["with_gan"]["val.flip.macro_f1"]

    # The weight-matched control: the real faces with the with_gan run's class weights. It needs
    # the counts the GAN adds, not the GAN: nothing trains or loads a generator for it.
    from ferkit.gan import oversample

    def no_generator(*args, **kwargs):
        raise AssertionError("the weight-matched control reached for a generator")

    monkeypatch.setattr(oversample, "fit_generator", no_generator)
    monkeypatch.setattr(oversample.TrainedGenerator, "load", no_generator)
    table = json.loads(out.read_text())
    del table["results"]["gan"]["0"]  # not even to score the GAN's faces, which go with the with_gan run
    out.write_text(json.dumps(table))
    assert bench_gan.main([*argv, "--variants", "weights_matched"]) == 0
    results = json.loads(out.read_text())["results"]
    runs = {r["variant"]: r for r in results["runs"]}
    assert set(runs) == {"without_gan", "with_gan", "weights_matched"} and "0" not in results["gan"]
    matched, gan, real = (runs[v]["class_weights"] for v in ("weights_matched", "with_gan", "without_gan"))
    twelve_more = np.concatenate([data.split("train").labels, np.full(12, EMOTIONS.index("disgust"))])
    assert list(gan.values()) == class_weights(twelve_more, **weight_params).as_list()
    assert matched == gan and matched["disgust"] < real["disgust"]
    assert list(real.values()) == weights
    assert runs["weights_matched"]["synthetic_images"] == 0
    assert runs["weights_matched"]["train_images"] == runs["with_gan"]["train_images"] - 12
    # Seed 0's runs trained on another kind of CPU: a run of it here would not pair with them.
    report = json.loads(out.read_text())
    report["results"]["runs"] = [r for r in report["results"]["runs"] if r["variant"] != "weights_matched"]
    for r in report["results"]["runs"]:
        r["machine"] = {**r["machine"], "cpu": "AMD EPYC (family 25, model 17)", "isa": ["avx2", "avx512_bf16"]}
    out.write_text(json.dumps(report))
    with pytest.raises(SystemExit, match=r"seed 0's runs trained on AMD EPYC .* another table \(--out\)") as refused:
        bench_gan.main([*argv, "--variants", "weights_matched"])
    assert "which trains another model from the same seed" in str(refused.value)
    assert json.loads(out.read_text()) == report  # nothing trained, the table kept


def test_a_cached_generator_is_reused_only_where_it_trains_at_the_same_precision(monkeypatch, tmp_path):
    from ferkit import runtime
    from ferkit.gan.oversample import OversampleConfig

    over = OversampleConfig(enabled=True, targets={"disgust": "3x"}, gan={"precision": "auto", "device": "cpu"})
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    monkeypatch.setattr(runtime, "cpu_vendor", lambda: "GenuineIntel")
    fp32_here = bench_gan.generator_cache(tmp_path, over)
    assert bench_gan.generator_cache(tmp_path, over) == fp32_here and fp32_here.parent == tmp_path
    monkeypatch.setattr(runtime, "cpu_vendor", lambda: "AuthenticAMD")  # auto: bf16 there
    assert bench_gan.generator_cache(tmp_path, over) != fp32_here


class TestAblationAtTheWholeBudget:
    """`make ablation-full`: each row a `make train` of its own config, gathered into one table."""

    def test_the_full_rows_config_is_cpu_yaml_itself_and_each_row_switches_off_one_part(self):
        from tests.benchmarks import bench_seeds

        cpu = bench_ablation.ROOT / "configs/cpu.yaml"
        shipped = yaml.safe_load(cpu.read_text())
        full = bench_ablation.row_config(cpu, 36, "full")
        # The headline seeds (`make seeds` of cpu.yaml) are the full row's runs.
        assert bench_seeds.training_fingerprint(full) == bench_seeds.training_fingerprint(shipped)
        # Rows compare at equal epochs: the config's deadline, which cuts a slow day's tail, is left out.
        assert "deadline" in shipped["steps"]["train_model"]["parameters"]["config"]
        assert "deadline" not in full["steps"]["train_model"]["parameters"]["config"]
        plain = bench_ablation.row_config(cpu, 36, "no_transformer")
        plain["steps"]["train_model"]["parameters"]["config"]["architecture_kwargs"]["transformer"] = True
        assert plain == full
        short = bench_ablation.row_config(cpu, 12, "full")["steps"]["train_model"]["parameters"]["config"]
        assert short["phases"][0]["epochs"] == 12
        with pytest.raises(SystemExit, match="unknown row 'no_head'"):
            bench_ablation.row_config(cpu, 36, "no_head")

    def test_a_short_budget_counts_in_what_a_seed_trains_only_under_a_time_budget(self):
        from tests.benchmarks import bench_seeds

        config = {"steps": {"train_model": {"parameters": {"config": dict(TINY_HYBRID)}}}}
        plain = bench_seeds.training_fingerprint(config)
        train = config["steps"]["train_model"]["parameters"]["config"]
        train["short_budget"] = {"max_share": 0.34, "augment_strength": 0.25, "dropout": 0.0}
        assert bench_seeds.training_fingerprint(config) == plain  # no budget: it shapes nothing
        train["time_budget_minutes"] = 30
        budgeted = bench_seeds.training_fingerprint(config)
        del train["short_budget"]
        assert budgeted not in {plain, bench_seeds.training_fingerprint(config)}

        # The ablation and GAN tables: their recipe hash, and a run recorded before the config
        # gained a short_budget, match as the seeds' hash does.
        lean = dict(TINY_HYBRID)
        short = {**lean, "short_budget": {"max_share": 0.34, "augment_strength": 0.25, "dropout": 0.0}}
        assert bench_ablation.recipe_hash(short) == bench_ablation.recipe_hash(lean)
        assert bench_ablation.same_training(lean, short) and bench_ablation.same_training(short, lean)
        budgeted_short, budgeted_lean = ({**c, "time_budget_minutes": 30} for c in (short, lean))
        assert bench_ablation.recipe_hash(budgeted_short) != bench_ablation.recipe_hash(budgeted_lean)
        assert not bench_ablation.same_training(budgeted_short, budgeted_lean)
        assert not bench_ablation.same_training(lean, {**lean, "lr": 0.5})

    def test_a_deadline_is_not_what_a_seed_trains_and_a_seed_it_cut_says_where(self, tmp_path):
        """The seeds trained before cpu.yaml gained its deadline stand: a quick day trains the same
        epochs with or without it. A seed whose training it ended early records the epoch."""
        from tests.benchmarks import bench_seeds

        config = {"steps": {"train_model": {"parameters": {"config": dict(TINY_HYBRID)}}}}
        plain = bench_seeds.training_fingerprint(config)
        config["steps"]["train_model"]["parameters"]["config"]["deadline"] = {"minutes": 51, "max_cut": 0.2}
        assert bench_seeds.training_fingerprint(config) == plain
        assert bench_ablation.same_training(TINY_HYBRID, {**TINY_HYBRID, "deadline": {"minutes": 51}})

        log = tmp_path / "train.log"
        assert bench_seeds.cut_at(log) == {}  # no log: nothing to say
        log.write_text("training: 30/36 ...\ndeadline 51 min: at this pace (1 min an epoch) ...\n")
        assert bench_seeds.cut_at(log) == {}  # warned, not cut
        log.write_text(log.read_text() + "deadline: training ends after epoch 33 of 36: 50 min of its 51 min spent\n")
        assert bench_seeds.cut_at(log) == {"cut_at_epoch": 33, "of_epochs": 36, "cut_by": "deadline"}

    def test_the_table_gathers_each_rows_seeds_and_refuses_a_file_of_another_training(
        self, setup, tmp_path, monkeypatch, capsys
    ):
        from ferkit.data.labels import EMOTIONS
        from tests.benchmarks import bench_seeds

        _, config, out = setup
        folder = tmp_path / "ablation-3-epochs"

        def scored(home, data, split, tta):  # what `ferkit evaluate` says of each home's champion
            row, seed = home.parent.name, int(home.name.removeprefix("seed"))
            value = round((0.70 if row == "full" else 0.68) + 0.01 * seed + (0.005 if split == "test" else 0), 4)
            figures = {"accuracy": value, "balanced_accuracy": value, "macro_f1": value, "log_loss": 0.8}
            return {**figures, "recall": dict.fromkeys(EMOTIONS, value), "leakage_free": figures}

        monkeypatch.setattr(bench_seeds, "train_seed", lambda *args, **kwargs: (0, 1.0))
        monkeypatch.setattr(bench_seeds, "score", scored)
        for row, seeds in (("full", "0,1,2"), ("no_transformer", "0,1")):
            row_file = tmp_path / f"{row}.yaml"
            argv = ["--config", str(config), "--epochs", "3", "--write-config", row, "--out", str(row_file)]
            assert bench_ablation.main(argv) == 0
            argv = ["bench_seeds", "--config", str(row_file), "--seeds", seeds, "--root", str(tmp_path / "homes" / row)]
            monkeypatch.setattr("sys.argv", [*argv, "--out", str(folder / f"{row}.json")])
            assert bench_seeds.main() == 0

        argv = ["--config", str(config), "--epochs", "3", "--seeds", "0,1", "--out", str(out)]
        argv += ["--from-seeds", str(folder)]
        assert bench_ablation.main(argv) == 0
        results = json.loads(out.read_text())["results"]
        assert [(r["row"], r["seed"]) for r in results["runs"]] == [
            ("full", 0), ("full", 1), ("no_transformer", 0), ("no_transformer", 1)
        ]  # fmt: skip
        assert results["modes"] == ["multi_scale"] and results["table"]["budget_epochs"] == 3
        gap = results["summary"]["no_transformer"]["val.multi_scale.macro_f1"]
        assert gap["mean"] == pytest.approx(0.685) and gap["minus_full"] == pytest.approx(-0.02)
        test_side = results["summary"]["full"]["test.multi_scale.fear_recall"]
        assert test_side["mean"] == pytest.approx(0.71)  # PrivateTest reported beside, per class too
        assert "no_attention.json: not trained yet; row no_attention left out" in capsys.readouterr().out

        # Without --seeds the table holds every seed the files hold: training seed 2 of one row
        # (`make ablation-full ROWS=full SEEDS=2`) does not drop the others' seeds 0 and 1.
        every = [a for a in argv if a not in ("--seeds", "0,1")]
        assert bench_ablation.main(every) == 0
        assert [(r["row"], r["seed"]) for r in json.loads(out.read_text())["results"]["runs"]] == [
            ("full", 0), ("full", 1), ("full", 2), ("no_transformer", 0), ("no_transformer", 1)
        ]  # fmt: skip
        assert bench_ablation.main(argv) == 0  # --seeds still chooses

        # A row's file holding another row's training is refused, named, and the table is kept.
        before = out.read_bytes()
        (folder / "no_attention.json").write_text((folder / "no_transformer.json").read_text())
        with pytest.raises(SystemExit, match="no_attention.json: its seeds trained .* not row no_attention"):
            bench_ablation.main(argv)
        assert out.read_bytes() == before
        (folder / "no_attention.json").unlink()

        # A row this machine would train in another precision than the table's is refused before
        # any training: `make ablation-full` writes no config for it, so bench_seeds never runs.
        here = bench_seeds.trained_precision(bench_ablation.row_config(config, 3, "no_branches"))
        other = "bf16" if here == "fp32" else "fp32"
        report = json.loads((folder / "full.json").read_text())
        (folder / "full.json").write_text(json.dumps({**report, "precision": other}))
        row_file = tmp_path / "no_branches.yaml"
        write = ["--config", str(config), "--epochs", "3", "--write-config", "no_branches", "--out", str(row_file)]
        with pytest.raises(
            SystemExit, match=f"full.json: its seeds trained in {other}; row no_branches would train in {here}"
        ):
            bench_ablation.main([*write, "--from-seeds", str(folder)])
        assert not row_file.exists()
        (folder / "full.json").write_text(json.dumps(report))

        # So is a row this machine would train on another kind of CPU than the table's seeds: the
        # same seed trains another model there, and a row's difference pairs seeds.
        elsewhere = copy.deepcopy(report)
        for row in elsewhere["results"]["rows"]:
            row["machine"] = {**row["machine"], "cpu": "AMD EPYC (family 25, model 17)", "isa": ["avx512_bf16"]}
        (folder / "full.json").write_text(json.dumps(elsewhere))
        with pytest.raises(
            SystemExit,
            match=r"full.json: its seeds trained on AMD EPYC \(family 25, model 17\) \[avx512_bf16\]; row "
            r"no_branches would train on .*FOLDER=<another folder>",
        ):
            bench_ablation.main([*write, "--from-seeds", str(folder)])
        assert not row_file.exists()
        # and a table is not gathered from rows trained on two kinds.
        with pytest.raises(SystemExit, match=r"differ in kind of CPU"):
            bench_ablation.main(argv)
        assert out.read_bytes() == before
        (folder / "full.json").write_text(json.dumps(report))

        # A row's config beside its table is not written over by another training's (the recipe
        # changed since): the table goes on naming the config that trained it.
        beside = folder / "no_transformer.yaml"
        write = ["--config", str(config), "--epochs", "3", "--write-config", "no_transformer", "--out", str(beside)]
        assert bench_ablation.main([*write, "--from-seeds", str(folder)]) == 0
        written = beside.read_bytes()
        assert written.startswith(b"# The ablation's no_transformer row: ")
        assert (
            bench_seeds.training_fingerprint(yaml.safe_load(written))
            == json.loads((folder / "no_transformer.json").read_text())["training_sha256"]
        )
        write[write.index("3")] = "4"
        with pytest.raises(SystemExit, match=r"no_transformer.json holds seeds of another training .*another folder"):
            bench_ablation.main([*write, "--from-seeds", str(folder)])
        assert beside.read_bytes() == written

        # An ablation trained in one process (`make ablation`) is not overwritten by a gathered one.
        in_process = tmp_path / "in-process.json"
        in_process.write_text(json.dumps({"results": {"table": {"config": str(config), "budget_epochs": 3}}}))
        kept = in_process.read_bytes()
        with pytest.raises(SystemExit, match="in-process.json: holds an ablation `make ablation` trained in one"):
            bench_ablation.main([*argv[:-2], "--from-seeds", str(folder), "--out", str(in_process)])
        assert in_process.read_bytes() == kept


class TestAveraging:
    def test_a_self_distilled_recipe_trains_as_fit_trains_it(self, setup):
        """The blend of labels and past predictions rises per epoch in the benchmark as in `fit`."""
        import torch

        from ferkit.data import read_fer2013
        from ferkit.models import build_model
        from ferkit.training import TrainConfig, fit, seed_everything
        from tests.benchmarks import bench_averaging

        archive, _, _ = setup
        config = TrainConfig(**{**TINY_HYBRID, "ema_decay": 0.9, "self_distill": {"alpha": 0.8}})
        data = read_fer2013(archive, progress=False)
        trained = bench_averaging.train_with_averages(config, data, None, (), ())["weights"]
        seed_everything(config.seed)
        model = build_model(config.architecture, **config.architecture_kwargs)
        split, val = data.split("train"), data.split("val")
        fit(model, split.images, split.labels, val.images, val.labels, config)
        for name, value in model.state_dict().items():
            assert torch.equal(trained["last"][name], value), name

    def test_the_averages_follow_the_training_fit_runs_and_are_compared_paired_on_both_splits(self, setup):
        """The benchmark trains what `fit` trains (the same last weights and recipe EMA), so its
        averages are those of `make train`'s training; each is scored on PublicTest and PrivateTest."""
        import torch

        from ferkit.data import read_fer2013
        from ferkit.data.weights import class_weights
        from ferkit.models import build_model
        from ferkit.training import TrainConfig, fit, seed_everything
        from tests.benchmarks import bench_averaging

        archive, config_file, _ = setup
        train = {**TINY_HYBRID, "ema_decay": 0.9, "validate_every": 1}
        config_file.write_text(yaml.safe_dump({"steps": {
            "compute_class_weights": {"parameters": {"method": "inverse_frequency", "power": 0.5}},
            "train_model": {"parameters": {"config": train}},
            "evaluate_model": {"parameters": {"tta": "multi_scale"}},
        }}))  # fmt: skip
        data = read_fer2013(archive, progress=False)
        weights = class_weights(data.split("train").labels, power=0.5).as_list()
        config = TrainConfig(**train)
        trained = bench_averaging.train_with_averages(config, data, weights, (0.5, 0.9), (2,))["weights"]
        assert sorted(trained) == ["ema_0.5", "ema_0.9", "last", "swa_2"]

        seed_everything(config.seed)
        model = build_model(config.architecture, **config.architecture_kwargs)
        split, val = data.split("train"), data.split("val")
        state = config_file.parent / "state.pt"
        fit(
            model,
            split.images,
            split.labels,
            val.images,
            val.labels,
            config,
            class_weights=weights,
            checkpoint_path=state,
        )
        for name, value in model.state_dict().items():
            assert torch.equal(trained["last"][name], value), name
        fit_ema = torch.load(state, weights_only=False)["ema"]  # the recipe's EMA after fit's last epoch
        for name, value in trained["ema_0.9"].items():
            assert torch.equal(fit_ema[f"module.{name}"], value), name
        # SWA's mean differs from the last weights, and its BatchNorm statistics were measured again.
        for kind in ("weight", "running_mean"):
            name = next(k for k in trained["last"] if k.endswith(kind) and trained["last"][k].dim() == 1)
            assert not torch.equal(trained["swa_2"][name], trained["last"][name]), name

        out = config_file.parent / "averaging.json"
        argv = ["--data", str(archive), "--config", str(config_file), "--out", str(out)]
        assert bench_averaging.main([*argv, "--seeds", "0,1", "--decays", "0.5,0.9", "--swa-epochs", "2"]) == 0
        report = json.loads(out.read_text())
        assert report["baseline"] == "ema_0.9" and report["table"]["modes"] == ["flip", "multi_scale"]
        rows = report["results"]["rows"]
        assert [r["seed"] for r in rows] == [0, 1]
        for r in rows:
            for split in ("val", "test"):
                figures = r["averages"]["swa_2"][split]["multi_scale"]
                assert 0 <= figures["balanced_accuracy"] <= 1 and 0 <= figures["fear_recall"] <= 1
        gains = report["results"]["gains"]["multi_scale"]
        assert all(d == 0 for d in gains["ema_0.9"]["val"]["macro_f1"]["per_seed"])  # the baseline less itself
        expected = [r["averages"]["last"]["val"]["multi_scale"]["macro_f1"]
                    - r["averages"]["ema_0.9"]["val"]["multi_scale"]["macro_f1"] for r in rows]  # fmt: skip
        assert gains["last"]["val"]["macro_f1"]["per_seed"] == pytest.approx(expected, abs=1e-6)
        # A rerun keeps the seeds already measured for the same table and trains nothing.
        before = out.read_text()
        assert bench_averaging.main([*argv, "--seeds", "0", "--decays", "0.5,0.9", "--swa-epochs", "2"]) == 0
        assert json.loads(out.read_text())["results"]["rows"] == json.loads(before)["results"]["rows"]


class TestRecordedConfigs:
    """Each seeds table names, in this repository, the config that trained it: results.md's commands run as typed."""

    RESULTS = ROOT / "tests/benchmarks/results"
    # Hashed by bench_seeds before an unused `short_budget` was left out of the hash: held to that hash.
    OLDER_HASH = {"seeds-shipped30-seed0.json", "seeds-mid30-seed0.json"}

    @staticmethod
    def hash_with_short_budget(config: dict) -> str:
        trains = copy.deepcopy(config)
        for step in ("evaluate_model", "report_drift", "register_model"):
            trains["steps"].pop(step, None)
        return hashlib.sha256(json.dumps(trains, sort_keys=True).encode()).hexdigest()[:16]

    def test_each_table_names_a_config_here_that_trains_what_it_holds(self):
        from ferkit.training import TrainConfig
        from tests.benchmarks.bench_seeds import training_fingerprint

        # `make ablation-full` trains each row's config from beside its table.
        tables = sorted(self.RESULTS.glob("seeds*.json")) + sorted(self.RESULTS.glob("ablation-*-epochs/*.json"))
        assert len(tables) >= 26
        for table in tables:
            report = json.loads(table.read_text())
            path = ROOT / report["config"]
            assert not Path(report["config"]).is_absolute() and path.is_file(), f"{table.name}: {report['config']}"
            config = yaml.safe_load(path.read_text())
            TrainConfig(**config["steps"]["train_model"]["parameters"]["config"])  # today's code takes it
            if "training_sha256" not in report:  # a table from before the hash was recorded
                continue
            hashed = self.hash_with_short_budget if table.name in self.OLDER_HASH else training_fingerprint
            assert hashed(config) == report["training_sha256"], f"{table.name} did not train {report['config']}"

    def test_a_changed_config_no_longer_matches_its_table(self):
        from tests.benchmarks.bench_seeds import training_fingerprint

        report = json.loads((self.RESULTS / "seeds-cutmix.json").read_text())
        config = yaml.safe_load((ROOT / report["config"]).read_text())
        assert training_fingerprint(config) == report["training_sha256"]
        config["steps"]["train_model"]["parameters"]["config"]["mix"]["alpha"] = 0.5
        assert training_fingerprint(config) != report["training_sha256"]
