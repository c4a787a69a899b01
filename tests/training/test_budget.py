"""A time budget: the rehearsal's speeds set how many epochs train, the phases shrink in proportion
(their schedules anneal over what runs), a resumed training keeps its plan, and a budget that holds
not one epoch stops before training with the figures that say why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from ferkit.data.dataset import FERDataset
from ferkit.training import Phase, TrainConfig, train
from ferkit.training import budget as budget_module
from ferkit.training.budget import (
    MARGIN,
    BudgetPlan,
    Rehearsal,
    budgeted_config,
    measure,
    plan_budget,
    plan_path,
    share_epochs,
    steps_per_epoch,
    validations,
)
from ferkit.training.config import ProgressiveSettings, ShortBudgetSettings
from ferkit.training.train import remove_abandoned_states, remove_resume_states, resume_path, train_resumable
from tests.training.test_training import two_class_faces

ROOT = Path(__file__).resolve().parents[2]

SMALL = dict(
    architecture="plain_cnn",
    architecture_kwargs={"widths": [8, 16, 16, 32]},
    batch_size=32,
    early_stopping_patience=None,
    use_class_weights=False,
    num_threads=2,
    tta_flip=True,
    ema_decay=0.99,
    device="cpu",  # trainings are compared weight for weight: CUDA's kernels are not deterministic
)


def faces(n: int = 256) -> FERDataset:
    x, y = two_class_faces(n, seed=0)
    val = n // 4
    return FERDataset(np.concatenate([x, x[:val]]), np.concatenate([y, y[:val]]),
                      np.array([0] * n + [1] * val), [f"f{i}" for i in range(n + val)])  # fmt: skip


def known_speeds(images_per_second: float, val_faces_per_second: float, save_seconds: float = 0.0):
    """A machine of these speeds, as a rehearsal would find it."""

    def rehearse(config, train_images, train_labels, val_images, state_folder=None):
        return Rehearsal(images_per_second, val_faces_per_second, save_seconds)

    return rehearse


def plan_of(minutes: float, config: TrainConfig, speeds=None) -> BudgetPlan:
    data = faces()
    train_split, val_split = data.split("train"), data.split("val")
    config = config.model_copy(update={"time_budget_minutes": minutes})
    return plan_budget(config, train_split.images, train_split.labels, val_split.images,
                       rehearse=speeds or known_speeds(256, 64))  # fmt: skip


class TestPlan:
    # 256 faces in batches of 32: 8 steps an epoch; at 256 images/s an epoch takes 1 s, and 64 val
    # faces at 64 faces/s take 1 s to score.
    config = TrainConfig(
        **SMALL, validate_every=2, phases=[Phase(name="train", epochs=20, lr=3e-3, schedule="onecycle")]
    )

    def test_val_is_scored_every_nth_epoch_each_phases_last_and_for_the_temperature(self):
        assert validations([5], validate_every=2) == 3 + 1  # epochs 2, 4, 5
        assert validations([3, 3], validate_every=3) == 2 + 1  # epochs 3 and 6, each a phase's last
        assert validations([2, 2], validate_every=3) == 3 + 1  # 2 (last of a), 3, 4 (last of b)
        assert validations([4], validate_every=1) == 4 + 1

    def test_the_most_epochs_whose_projection_fits_the_budget(self):
        # 5 epochs: 5 s of training, validations after epochs 2, 4, 5 and the temperature fit: 9 s.
        plan = plan_of(9.5 / 60 / MARGIN, self.config)
        assert (plan.epochs, plan.phase_epochs, plan.configured_epochs) == (5, [5], 20)
        assert (plan.epoch_seconds, plan.validation_seconds, plan.projected_seconds) == (1.0, 1.0, 9.0)
        assert "5 of 20 epochs fit" in plan.describe()

    def test_state_writes_count_against_the_budget(self):
        plan = plan_of(9.5 / 60 / MARGIN, self.config, known_speeds(256, 64, save_seconds=1.0))
        assert (plan.epochs, plan.projected_seconds) == (3, 9.0)  # 3 x (1 + 1) s and 3 scorings

    def test_a_budget_never_adds_epochs(self):
        plan = plan_of(600, self.config)
        assert (plan.epochs, plan.phase_epochs) == (20, [20])
        assert budgeted_config(self.config, plan) is self.config
        assert "all 20 epochs fit" in plan.describe()

    def test_a_budget_without_one_epoch_stops_before_training_and_says_why(self):
        with pytest.raises(ValueError, match=r"time_budget_minutes 0\.01: not even 1 epoch.*256 training images/s"):
            plan_of(0.01, self.config)

    def test_each_phase_keeps_an_epoch(self):
        phased = TrainConfig(**SMALL, phases=[Phase(name=n, epochs=4, lr=1e-3) for n in "abc"])
        # Two epochs would fit (2 s and 3 scorings), but three phases need three (3 s and 4 scorings).
        with pytest.raises(ValueError, match="not even 3 epoch"):
            plan_of(6.5 / 60 / MARGIN, phased)
        assert plan_of(7.5 / 60 / MARGIN, phased).phase_epochs == [1, 1, 1]

    def test_a_short_budget_lightens_a_plan_that_keeps_few_epochs_and_no_other(self):
        lighter = ShortBudgetSettings(max_share=0.25, augment_strength=0.25, dropout=0.0)
        config = self.config.model_copy(update={"short_budget": lighter})
        few = plan_of(9.5 / 60 / MARGIN, config)  # 5 of 20 epochs: a quarter
        assert (few.epochs, few.lightened) == (5, {"augment_strength": 0.25, "dropout": 0.0})
        assert "lighter regularisation: augment_strength 0.25, dropout 0" in few.describe()
        short = budgeted_config(config, few)
        assert (short.total_epochs, short.augment.strength, short.architecture_kwargs) == (
            5, 0.25, {"widths": [8, 16, 16, 32], "dropout": 0.0})  # fmt: skip
        assert short.augment.rotation_deg == config.augment.rotation_deg  # strength scales the ranges

        more = plan_of(11.5 / 60 / MARGIN, config)  # 6 of 20 epochs: over a quarter
        assert (more.epochs, more.lightened) == (6, {})
        assert "lighter" not in more.describe()
        kept = budgeted_config(config, more)
        assert (kept.augment, kept.architecture_kwargs) == (config.augment, config.architecture_kwargs)
        assert plan_of(600, config).lightened == {}  # all epochs fit
        assert plan_of(9.5 / 60 / MARGIN, self.config).lightened == {}  # no short_budget: nothing lightened

    def test_a_short_budget_changes_only_what_it_sets(self):
        config = self.config.model_copy(update={"short_budget": ShortBudgetSettings(max_share=0.5, dropout=0.1)})
        plan = plan_of(9.5 / 60 / MARGIN, config)
        short = budgeted_config(config, plan)
        assert plan.lightened == {"dropout": 0.1} and short.architecture_kwargs["dropout"] == 0.1
        assert short.augment == config.augment

    def test_a_short_budget_dropout_needs_an_architecture_that_takes_one(self):
        from ferkit.models.registry import MODELS

        @MODELS.register("no_dropout_test")
        def no_dropout(*, widths=(8,)):
            raise AssertionError("never built")

        try:
            with pytest.raises(ValueError, match=r"short_budget\.dropout: architecture 'no_dropout_test' takes no"):
                TrainConfig(architecture="no_dropout_test", short_budget={"max_share": 0.3, "dropout": 0.1})
            TrainConfig(architecture="no_dropout_test", short_budget={"max_share": 0.3, "augment_strength": 0.5})
        finally:
            del MODELS.builders["no_dropout_test"]
        with pytest.raises(ValueError, match="max_share"):
            TrainConfig(**SMALL, short_budget={"max_share": 1.0, "dropout": 0.1})

    def test_a_plan_written_before_short_budgets_reads_as_lightening_nothing(self):
        written = plan_of(9.5 / 60 / MARGIN, self.config).as_dict()
        del written["lightened"]
        assert BudgetPlan.from_dict(written).lightened == {}

    def test_a_real_rehearsal_times_this_machine(self, tmp_path):
        data = faces()
        config = self.config.model_copy(update={"time_budget_minutes": 5.0})
        train_split, val_split = data.split("train"), data.split("val")
        measured = measure(config, train_split.images, train_split.labels, val_split.images, tmp_path / "resume")
        assert measured.images_per_second > 0 and measured.val_faces_per_second > 0 and measured.save_seconds > 0
        assert list((tmp_path / "resume").iterdir()) == []  # the timed state write leaves nothing behind
        assert steps_per_epoch(config, train_split.labels) == 8


class TestShortening:
    def test_phases_share_the_epochs_in_proportion(self):
        assert share_epochs([2, 8, 10], 10) == [1, 4, 5]
        assert share_epochs([2, 8, 10], 3) == [1, 1, 1]
        assert share_epochs([2, 8, 10], 30) == [2, 8, 10]
        for epochs in range(3, 21):
            shares = share_epochs([2, 8, 10], epochs)
            assert sum(shares) == epochs and all(1 <= s <= c for s, c in zip(shares, [2, 8, 10]))

    def test_a_shortened_config_keeps_its_form(self):
        plan = BudgetPlan(5, 20, 10, [1, 4, 5], 100.0, 100.0, 1.0, 1.0, 0.0, 20.0, 0.0)
        phased = TrainConfig(**SMALL, phases=[Phase(name="a", epochs=2, lr=1e-3), Phase(name="b", epochs=8, lr=1e-3),
                                              Phase(name="c", epochs=10, lr=1e-4)])  # fmt: skip
        short = budgeted_config(phased, plan)
        assert [(p.name, p.epochs, p.lr) for p in short.phases] == [("a", 1, 1e-3), ("b", 4, 1e-3), ("c", 5, 1e-4)]
        single = budgeted_config(TrainConfig(**SMALL, epochs=20), plan)
        assert (single.epochs, single.phases) == (10, [])

    def test_progressive_resizing_keeps_its_share_and_a_last_full_size_epoch(self):
        config = TrainConfig(**SMALL, epochs=20, progressive=ProgressiveSettings(size=32, epochs=8))
        assert (
            budgeted_config(config, BudgetPlan(5, 20, 10, [10], 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0)).progressive.epochs
            == 4
        )
        assert (
            budgeted_config(config, BudgetPlan(5, 20, 2, [2], 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0)).progressive.epochs
            == 1
        )
        assert budgeted_config(config, BudgetPlan(5, 20, 1, [1], 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0)).progressive is None

    def test_the_budget_changes_no_fingerprint_of_a_config_without_one(self):
        config = TrainConfig(**SMALL)
        assert "time_budget_minutes" not in config.recipe() and "short_budget" not in config.recipe()
        assert config.fingerprint() != config.model_copy(update={"time_budget_minutes": 30.0}).fingerprint()

    def test_a_short_budget_changes_the_fingerprint_only_beside_a_budget(self):
        """Without a budget it shapes nothing: resume states and cached steps of the config stay."""
        config, lighter = TrainConfig(**SMALL), ShortBudgetSettings(max_share=0.3, dropout=0.0)
        assert config.model_copy(update={"short_budget": lighter}).fingerprint() == config.fingerprint()
        budgeted = config.model_copy(update={"time_budget_minutes": 30.0})
        with_lighter = budgeted.model_copy(update={"short_budget": lighter})
        assert with_lighter.fingerprint() != budgeted.fingerprint()
        assert with_lighter.recipe()["short_budget"] == {"max_share": 0.3, "augment_strength": None, "dropout": 0.0}


def test_a_budgeted_training_trains_the_planned_epochs_with_the_schedule_annealed(monkeypatch):
    data = faces()
    phases = [Phase(name="warm", epochs=4, lr=3e-3, schedule="onecycle"),
              Phase(name="tune", epochs=8, lr=1e-3, schedule="cosine")]  # fmt: skip
    config = TrainConfig(**SMALL, phases=phases, time_budget_minutes=10.0)
    # The machine as the rehearsal would find it slow: 4 images/s (64 s an epoch), 64 val faces in 10 s;
    # the real epochs take far less, so the budget's deadline never comes near.
    monkeypatch.setattr(budget_module, "measure", known_speeds(4, 6.4))
    training = train(config, data, [1.0] * 7)
    plan = training.budget
    assert plan is not None and 2 <= plan.epochs < 12 and sum(plan.phase_epochs) == plan.epochs
    history = training.result.history
    assert len(history) == plan.epochs
    recipe_phases = training.model.recipe["phases"]
    assert [p["epochs"] for p in recipe_phases] == plan.phase_epochs and training.model.recipe[
        "time_budget_minutes"
    ] == 10.0
    for phase, peak in enumerate([3e-3, 1e-3]):
        lrs = [h["train.lr"] for h in history if h["train.phase"] == phase]
        assert len(lrs) == plan.phase_epochs[phase]
        assert lrs[-1] < 0.01 * peak  # annealed over the epochs that ran, not cut off half way


@pytest.mark.parametrize("lighter", [None, ShortBudgetSettings(max_share=0.9, augment_strength=0.25, dropout=0.0)])
def test_a_budgeted_training_trains_what_the_config_with_the_planned_epochs_trains(monkeypatch, lighter):
    """The rehearsal builds and trains throwaway models before the training: the training is still
    the seeded run of the shortened config, weight for weight, as if no rehearsal had run; with a
    short budget's lighter settings, of the shortened and lightened config."""
    data = faces()
    phases = [Phase(name="train", epochs=12, lr=3e-3, schedule="onecycle")]
    config = TrainConfig(**SMALL, phases=phases, time_budget_minutes=10.0, short_budget=lighter)
    real_measure = budget_module.measure

    def slow_machine(*args, **kwargs):
        real_measure(*args, **kwargs)  # the real rehearsal, with what it draws from the generators
        return Rehearsal(4, 6.4, 0.0)

    monkeypatch.setattr(budget_module, "measure", slow_machine)
    budgeted = train(config, data, [1.0] * 7)
    assert budgeted.budget is not None and budgeted.budget.epochs < 12
    shortened = TrainConfig(**SMALL, phases=[phases[0].model_copy(update={"epochs": budgeted.budget.epochs})])
    if lighter is not None:
        assert budgeted.budget.lightened == {"augment_strength": 0.25, "dropout": 0.0}
        shortened = shortened.model_copy(update={"augment": shortened.augment.model_copy(update={"strength": 0.25}),
                                                 "architecture_kwargs": {**SMALL["architecture_kwargs"], "dropout": 0.0}})  # fmt: skip
        recipe = budgeted.model.recipe
        assert recipe["augment"]["strength"] == 0.25 and recipe["architecture_kwargs"]["dropout"] == 0.0
        assert budgeted.model.architecture_kwargs["dropout"] == 0.0  # the model it registers is built so
    plain = train(shortened, data, [1.0] * 7)
    assert plain.budget is None and plain.result.best_epoch == budgeted.result.best_epoch
    assert plain.model.weights_sha256() == budgeted.model.weights_sha256()


def test_a_machine_slower_than_its_rehearsal_ends_the_training_at_the_budget(tmp_path, monkeypatch, capsys):
    """The rehearsal can catch a host in a quiet moment (on a shared 2-core machine it once found
    140 images/s where the epochs then ran at about 110): the plan's epochs would overrun the budget. The
    training ends instead after the last epoch that leaves no room for another, scores it, keeps
    the best epoch so far, and says so; its resume state trains nothing more."""
    from ferkit.training import loop

    data = faces()
    config = TrainConfig(**SMALL, phases=[Phase(name="warm", epochs=6, lr=3e-3, schedule="onecycle"),
                                          Phase(name="tune", epochs=6, lr=1e-3, schedule="cosine")],
                         validate_every=3, time_budget_minutes=1.0)  # fmt: skip
    # The rehearsal finds a machine fast enough for all 12 epochs of a minute's budget ...
    monkeypatch.setattr(budget_module, "measure", known_speeds(1e6, 1e6))
    real_epoch, clock = loop.train_one_epoch, [0.0]

    def slow_epoch(*args, **kwargs):  # ... where each epoch then takes 10 s of the training's clock
        clock[0] += 10.0
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", slow_epoch)
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    epochs = []
    training = train_resumable(config, data, [1.0] * 7, tmp_path, callbacks=[lambda e, m: epochs.append(e)])
    assert training.budget.epochs == 12  # planned
    history = training.result.history
    # After epoch 5, 50 of the budget's 60 s are spent and another epoch would end past them.
    assert len(history) == 5 and epochs == [1, 2, 3, 4, 5]
    assert [h["train.phase"] for h in history] == [0.0] * 5  # the tune phase never started
    last = history[-1]
    assert last["train.stopped_by_time_budget"] == 1.0 and "val.macro_f1" in last  # the last epoch is scored
    assert not any("train.stopped_by_time_budget" in h for h in history[:-1])
    assert training.result.ended_by == "time budget" and training.result.epochs_trained == 5
    assert 1 <= training.result.best_epoch <= len(history)
    said = capsys.readouterr()
    assert f"time budget: training ends after epoch {len(history)} of 12" in said.out + said.err

    # Run again, the state says the training is over: no epoch more, the same weights.
    more = []
    again = train_resumable(config, data, [1.0] * 7, tmp_path, callbacks=[lambda e, m: more.append(e)])
    assert len(again.result.history) == len(history) and more == epochs  # the history replayed, nothing new
    assert again.model.weights_sha256() == training.model.weights_sha256()
    assert again.result.ended_by == "time budget"  # the replayed history says why it ended


def test_a_resumed_training_keeps_the_plan_it_started_with(tmp_path, monkeypatch):
    data = faces()
    config = TrainConfig(**SMALL, phases=[Phase(name="train", epochs=10, lr=3e-3, schedule="onecycle")],
                         time_budget_minutes=5.0)  # fmt: skip
    monkeypatch.setattr(budget_module, "measure", known_speeds(6, 6.4))  # 43 s an epoch: 5 fit

    class Stopped(Exception):
        pass

    def stop_after_two(epoch, metrics):
        if epoch == 2:
            raise Stopped

    with pytest.raises(Stopped):
        train_resumable(config, data, [1.0] * 7, tmp_path, callbacks=[stop_after_two])
    state = resume_path(tmp_path, config, data, [1.0] * 7)
    plan = BudgetPlan.from_dict(json.loads(plan_path(state).read_text()))
    assert state.is_file() and plan.epochs == 5

    # Now the machine is ten times faster: a new rehearsal would plan all ten epochs. The resumed
    # training does not rehearse; it finishes the five it planned.
    def no_rehearsal(*args):
        raise AssertionError("a resumed training rehearsed again")

    monkeypatch.setattr(budget_module, "measure", no_rehearsal)
    epochs = []
    resumed = train_resumable(config, data, [1.0] * 7, tmp_path, callbacks=[lambda e, m: epochs.append(e)])
    assert resumed.budget == plan and len(resumed.result.history) == 5 and epochs == [1, 2, 3, 4, 5]

    assert sorted(p.name for p in remove_resume_states(tmp_path, config)) == sorted([state.name, plan_path(state).name])


class TestPlanBesideTheState:
    config = TrainConfig(**SMALL, phases=[Phase(name="train", epochs=10, lr=3e-3, schedule="onecycle")],
                         time_budget_minutes=5.0)  # fmt: skip

    def state(self, folder: Path) -> Path:
        return resume_path(folder, self.config, faces(), [1.0] * 7)

    def test_a_plan_without_its_state_is_made_again(self, tmp_path, monkeypatch):
        """A kill in the first epoch leaves a plan and no state: the next start rehearses afresh."""
        monkeypatch.setattr(budget_module, "measure", known_speeds(6, 6.4))
        state = self.state(tmp_path)
        state.parent.mkdir(parents=True, exist_ok=True)
        plan_path(state).write_text(
            json.dumps({**plan_of(5.0, self.config).as_dict(), "epochs": 1, "phase_epochs": [1]})
        )
        training = train_resumable(self.config, faces(), [1.0] * 7, tmp_path)
        assert training.budget.epochs == 5 and len(training.result.history) == 5
        assert json.loads(plan_path(state).read_text())["epochs"] == 5

    def test_a_state_without_its_plan_is_refused_by_name(self, tmp_path, monkeypatch):
        monkeypatch.setattr(budget_module, "measure", known_speeds(6, 6.4))
        train_resumable(self.config, faces(), [1.0] * 7, tmp_path)
        state = self.state(tmp_path)
        plan_path(state).unlink()
        with pytest.raises(ValueError, match=rf"{state.name}: a resume state of a budgeted training without its plan"):
            train_resumable(self.config, faces(), [1.0] * 7, tmp_path)

    def test_a_malformed_plan_is_named(self, tmp_path, monkeypatch):
        monkeypatch.setattr(budget_module, "measure", known_speeds(6, 6.4))
        train_resumable(self.config, faces(), [1.0] * 7, tmp_path)
        plan_path(self.state(tmp_path)).write_text('{"epochs": "many"')
        with pytest.raises(ValueError, match=r"budget\.json: not a budget plan .*delete it and train-"):
            train_resumable(self.config, faces(), [1.0] * 7, tmp_path)

    def test_a_plan_ages_with_its_state(self, tmp_path):
        """A plan is written once; a state every epoch. An old plan beside a fresh state stays."""
        import os
        import time

        live, dropped = tmp_path / "train-aaaa-1.pt", tmp_path / "train-bbbb-2.pt"
        for state in (live, dropped):
            state.write_bytes(b"state")
            plan_path(state).write_text("{}")
        old = time.time() - 40 * 86400
        for path in (plan_path(live), dropped, plan_path(dropped)):
            os.utime(path, (old, old))
        removed = remove_abandoned_states(tmp_path)
        assert sorted(p.name for p in removed) == ["train-bbbb-2.budget.json", "train-bbbb-2.pt"]
        assert live.is_file() and plan_path(live).is_file()


def budget_config(minutes: str, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ferkit.cli", "budget-config", "configs/cpu.yaml", "--minutes", minutes]
    return subprocess.run([*command, "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_budget_config_writes_the_budget_into_the_train_step(tmp_path):
    out = tmp_path / "cpu_42.yaml"
    done = budget_config("42", out)
    assert done.returncode == 0, done.stderr
    written, shipped = yaml.safe_load(out.read_text()), yaml.safe_load((ROOT / "configs/cpu.yaml").read_text())
    train_config = written["steps"]["train_model"]["parameters"]["config"]
    assert train_config.pop("time_budget_minutes") == 42
    assert written == shipped  # nothing else changed


def test_budget_config_refuses_a_budget_that_is_no_time(tmp_path):
    out = tmp_path / "never.yaml"
    done = budget_config("0", out)
    assert done.returncode == 2 and not out.exists()
    assert "--minutes 0" in done.stderr and "time_budget_minutes" in done.stderr and "greater than 0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.42, "0.4 s"), (40, "40 s"), (89.4, "89 s"), (148, "2 min 28 s"), (599, "9 min 59 s"),
     (600, "10 min"), (2891, "48 min"), (7500, "2 h 05 min")],
)  # fmt: skip
def test_durations_read_as_people_say_them(seconds, said):
    """An epoch of a few minutes keeps its seconds (2 min 28 s, not 2 min); longer spans round to minutes."""
    assert budget_module.duration(seconds) == said
