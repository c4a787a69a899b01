"""A config's `deadline`: decided at the first scored epoch of the last phase at full size, armed
where the schedule about fits it at that pace, it cuts the schedule's tail on a slow day (the
schedule is not replanned), leaves a quick machine's training the seeded run, stays off where
cutting would stop far from the schedule's end, and a resumed training keeps the decision."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch

from ferkit.training import Phase, TrainConfig, train
from ferkit.training.config import DeadlineSettings
from ferkit.training.train import train_resumable
from tests.training.test_budget import SMALL, faces

PHASES = [Phase(name="train", epochs=12, lr=3e-3, schedule="onecycle")]


def machine_at(monkeypatch, seconds_an_epoch: float, scoring: float = 0.0, by_phase: dict | None = None) -> None:
    """Every epoch takes `seconds_an_epoch` of the training's clock (`by_phase`: by phase name), every
    scoring of val `scoring`; saving takes none."""
    from ferkit.training import loop

    real_epoch, real_predict, clock = loop.train_one_epoch, loop.predict_proba, [0.0]

    def timed_epoch(setup, optimizer, scheduler, desc, *args, **kwargs):
        clock[0] += (by_phase or {}).get(desc.split()[0], seconds_an_epoch)
        return real_epoch(setup, optimizer, scheduler, desc, *args, **kwargs)

    def timed_scoring(*args, **kwargs):
        clock[0] += scoring
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", timed_epoch)
    monkeypatch.setattr(loop, "predict_proba", timed_scoring)
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: clock[0]))


def limited(minutes: float = 1.0, max_cut: float = 0.2, **extra) -> TrainConfig:
    return TrainConfig(**SMALL, phases=PHASES, deadline=DeadlineSettings(minutes=minutes, max_cut=max_cut), **extra)


def test_a_slow_day_cuts_the_schedules_tail_at_the_deadline(tmp_path, monkeypatch, capsys):
    """12 epochs of 5.5 s project 66 s against a 60 s deadline: a cut of 2 epochs, within the
    fifth allowed. The training keeps the 12-epoch schedule (each epoch's learning rate as without
    the deadline) and ends after epoch 10, the last that ends in time; that epoch is scored, the
    run says why it ended, and its resume state trains nothing more."""
    data = faces()
    machine_at(monkeypatch, 5.5)
    epochs = []
    training = train_resumable(limited(), data, [1.0] * 7, tmp_path, callbacks=[lambda e, m: epochs.append(e)])
    history = training.result.history
    assert len(history) == 10 and epochs == list(range(1, 11))
    assert history[-1]["train.stopped_by_deadline"] == 1.0 and "val.macro_f1" in history[-1]
    assert not any("train.stopped_by_deadline" in h for h in history[:-1])
    assert not any("train.stopped_by_time_budget" in h for h in history)
    assert training.result.ended_by == "deadline" and training.budget is None
    said = capsys.readouterr()
    said = said.out + said.err
    assert "deadline 1 min: at this pace (6 s an epoch) the training takes about 66 s; it ends at the deadline" in said
    assert said.count("deadline 1 min:") == 1  # decided once
    assert "deadline: training ends after epoch 10 of 12" in said
    assert re.search(r"and the last epoch took \d+ s with its scoring \(the schedule's tail is cut\)", said)

    # The schedule is the configured one, cut: the same learning rates as the whole 12 epochs'.
    whole = train(TrainConfig(**SMALL, phases=PHASES), data, [1.0] * 7)
    assert [h["train.lr"] for h in history] == [h["train.lr"] for h in whole.result.history[:10]]
    assert len(whole.result.history) == 12

    # Run again, the state says the training is over.
    more = []
    again = train_resumable(limited(), data, [1.0] * 7, tmp_path, callbacks=[lambda e, m: more.append(e)])
    assert more == epochs and again.result.ended_by == "deadline"
    assert again.model.weights_sha256() == training.model.weights_sha256()


def test_a_quick_machine_trains_every_epoch_the_seeded_run_as_without_the_deadline(monkeypatch, capsys):
    data = faces()
    machine_at(monkeypatch, 4.0)  # 48 s projected: within the 60
    quick = train(limited(), data, [1.0] * 7)
    assert len(quick.result.history) == 12 and quick.result.ended_by == "all epochs"
    assert "the training takes about 48 s; within it (should the machine slow down" in capsys.readouterr().out
    plain = train(TrainConfig(**SMALL, phases=PHASES), data, [1.0] * 7)
    assert quick.model.weights_sha256() == plain.model.weights_sha256()


def test_a_machine_too_slow_for_the_cut_allowed_trains_the_whole_schedule(monkeypatch, capsys):
    """10 s an epoch projects 120 s: cutting to 60 would leave half the schedule, more than the
    fifth allowed, so the deadline stays off and the run says how to fit a budget instead."""
    data = faces()
    machine_at(monkeypatch, 10.0)
    slow = train(limited(), data, [1.0] * 7)
    assert len(slow.result.history) == 12 and slow.result.ended_by == "all epochs"
    said = capsys.readouterr().out
    assert (
        "takes about 2 min 00 s; more than cutting at most 20% of the epochs saves: the whole schedule trains" in said
    )
    # With a larger cut allowed the same machine is held to the deadline (after 6 epochs).
    machine_at(monkeypatch, 10.0)
    held = train(limited(max_cut=0.5), data, [1.0] * 7)
    assert len(held.result.history) == 6 and held.result.ended_by == "deadline"


def test_a_time_budget_overrides_the_deadline_and_the_deadline_keys_its_resume_states():
    budgeted = TrainConfig(**SMALL, phases=PHASES, time_budget_minutes=5.0)
    both = limited(time_budget_minutes=5.0)
    assert "deadline" not in both.recipe() and both.fingerprint() == budgeted.fingerprint()
    plain = TrainConfig(**SMALL, phases=PHASES)
    assert "deadline" not in plain.recipe()  # fingerprints from before the field stay as they were
    assert limited().recipe()["deadline"] == {"minutes": 1.0, "max_cut": 0.2}
    assert limited().fingerprint() != plain.fingerprint()  # a cut state is not resumed without the limit


@pytest.mark.parametrize(("minutes", "max_cut"), [(0, 0.2), (30, 1.0), (30, -0.1)])
def test_a_deadline_out_of_range_is_refused_naming_the_field(minutes, max_cut):
    with pytest.raises(ValueError, match="minutes" if minutes == 0 else "max_cut"):
        DeadlineSettings(minutes=minutes, max_cut=max_cut)


def test_a_limit_arms_where_the_projection_overruns_it_by_at_most_the_cut_allowed():
    limit = DeadlineSettings(minutes=52, max_cut=0.2)
    assert limit.arms(48.6 * 60)  # a quick day: all 36 epochs within it
    assert limit.arms(58.2 * 60)  # 97 s epochs: the tail is cut
    assert not limit.arms(93 * 60)  # fp32 on a Xeon without AMX: 155 s epochs


def test_the_pace_counts_the_scorings_of_val_the_epochs_left_will_have(monkeypatch, capsys):
    """Scored every third epoch, the first epoch says nothing of scoring's cost: the decision waits
    for the first scored epoch. 12 epochs of 4 s with 4 scorings of 6 s take 72 s, not 48."""
    data = faces()
    machine_at(monkeypatch, 4.0, scoring=6.0)
    cut = train(limited(validate_every=3), data, [1.0] * 7)
    said = capsys.readouterr().out
    assert "at this pace (6 s an epoch) the training takes about 72 s; it ends at the deadline" in said
    assert cut.result.ended_by == "deadline" and len(cut.result.history) == 9
    assert "val.macro_f1" in cut.result.history[-1]  # the last epoch trained is scored


def test_a_cheap_first_phase_does_not_set_the_pace(monkeypatch, capsys):
    """A frozen phase trains faster than what follows: the pace is that of the last phase."""
    data = faces()
    phases = [Phase(name="warm", epochs=4, lr=3e-3, schedule="onecycle"),
              Phase(name="tune", epochs=8, lr=1e-3, schedule="cosine")]  # fmt: skip
    machine_at(monkeypatch, 1.0, by_phase={"tune": 8.0})
    config = TrainConfig(**SMALL, phases=phases, deadline=DeadlineSettings(minutes=1.0, max_cut=0.2))
    cut = train(config, data, [1.0] * 7)
    said = capsys.readouterr().out
    assert "at this pace (8 s an epoch) the training takes about 68 s; it ends at the deadline" in said
    assert cut.result.ended_by == "deadline" and [h["train.phase"] for h in cut.result.history][:4] == [0.0] * 4


def test_a_resumed_training_keeps_the_decision_it_made(tmp_path, monkeypatch, capsys):
    """Decided off on a slow machine (10 s an epoch), interrupted after epoch 3 and resumed on a
    quicker one (4.5 s, where a new decision would arm the deadline and cut): the resumed training
    trains every epoch, as the uninterrupted one did, weight for weight."""
    data = faces()
    machine_at(monkeypatch, 10.0)
    whole = train(limited(), data, [1.0] * 7)
    assert len(whole.result.history) == 12

    class Stopped(Exception):
        pass

    def stop_after_three(epoch, metrics):
        if epoch == 3:
            raise Stopped

    machine_at(monkeypatch, 10.0)
    with pytest.raises(Stopped):
        train_resumable(limited(), data, [1.0] * 7, tmp_path, callbacks=[stop_after_three])
    capsys.readouterr()
    machine_at(monkeypatch, 4.5)
    resumed = train_resumable(limited(), data, [1.0] * 7, tmp_path)
    assert len(resumed.result.history) == 12 and resumed.result.ended_by == "all epochs"
    assert "deadline 1 min:" not in capsys.readouterr().out  # not decided again
    assert resumed.model.weights_sha256() == whole.model.weights_sha256()
    (state,) = tmp_path.glob("train-*.pt")
    assert torch.load(state, weights_only=False)["limit"]["armed"] is False


def test_a_budgeted_training_runs_to_its_own_deadline_not_the_configs(monkeypatch, capsys):
    from ferkit.training import budget as budget_module
    from tests.training.test_budget import known_speeds

    data = faces()
    monkeypatch.setattr(budget_module, "measure", known_speeds(1e6, 1e6))  # the budget fits all 12
    machine_at(monkeypatch, 5.5)  # the config's deadline would cut after epoch 10
    budgeted = train(limited(time_budget_minutes=5.0), data, [1.0] * 7)
    assert len(budgeted.result.history) == 12 and budgeted.result.ended_by == "all epochs"
    assert "deadline 1 min:" not in capsys.readouterr().out


def test_a_one_epoch_schedule_has_nothing_to_decide(monkeypatch, capsys):
    machine_at(monkeypatch, 100.0)
    config = TrainConfig(**SMALL, phases=[PHASES[0].model_copy(update={"epochs": 1})],
                         deadline=DeadlineSettings(minutes=1.0))  # fmt: skip
    one = train(config, faces(), [1.0] * 7)
    assert len(one.result.history) == 1 and "deadline" not in capsys.readouterr().out
