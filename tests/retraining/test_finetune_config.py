"""What a fine-tune of the champion trains: its recipe with the fine-tune's schedule, and no time
budget or deadline of its own unless one is asked for (the champion's were for its whole training)."""

from __future__ import annotations

from ferkit.models import TrainedModel
from ferkit.retraining import FINETUNE_OVERRIDES, retrain_config
from ferkit.training import TrainConfig


def champion_trained_within(minutes: float) -> TrainedModel:
    recipe = TrainConfig(architecture="plain_cnn", architecture_kwargs={"widths": [4, 4, 8, 8]}, epochs=6,
                         time_budget_minutes=minutes, lr=0.01).recipe()  # fmt: skip
    return TrainedModel(architecture="plain_cnn", architecture_kwargs={"widths": [4, 4, 8, 8]}, state_dict={},
                        recipe=recipe)  # fmt: skip


def test_a_fine_tune_keeps_the_recipe_but_not_the_champions_budget():
    champion = champion_trained_within(42.0)
    config = retrain_config(champion)
    assert config.time_budget_minutes is None
    assert [p.model_dump(include={"name", "epochs"}) for p in config.phases] == [
        {"name": "finetune", "epochs": FINETUNE_OVERRIDES["phases"][0]["epochs"]}
    ]
    assert config.architecture_kwargs == champion.architecture_kwargs and config.weight_decay == 5e-4


def test_a_fine_tune_given_a_budget_keeps_it():
    config = retrain_config(champion_trained_within(42.0), {**FINETUNE_OVERRIDES, "time_budget_minutes": 5.0})
    assert config.time_budget_minutes == 5.0


def test_a_fine_tune_does_not_inherit_the_champions_deadline():
    recipe = TrainConfig(architecture="plain_cnn", architecture_kwargs={"widths": [4, 4, 8, 8]}, epochs=6,
                         deadline={"minutes": 51, "max_cut": 0.2}).recipe()  # fmt: skip
    champion = TrainedModel(architecture="plain_cnn", architecture_kwargs={"widths": [4, 4, 8, 8]}, state_dict={},
                            recipe=recipe)  # fmt: skip
    assert champion.recipe["deadline"] == {"minutes": 51, "max_cut": 0.2}
    assert retrain_config(champion).deadline is None
    asked = retrain_config(champion, {**FINETUNE_OVERRIDES, "deadline": {"minutes": 5}})
    assert asked.deadline is not None and asked.deadline.minutes == 5
