"""The champion/challenger decision, as plain data (the MLflow moves live in `ferkit.registry.promotion`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ferkit.registry.names import REGISTERED_MODEL_NAME

SCORE_DECIMALS = 6  # the registry keeps scores as tags with this many decimals


class RegistryError(RuntimeError):
    """The registry or tracking store cannot give what was asked (no such model, no store, ...)."""


class PromotionError(RegistryError):
    """A registry move that cannot be made (already the champion, nothing to roll back to, ...)."""


@dataclass(frozen=True)
class Gate:
    """Where a model is registered and how it is compared with the champion."""

    registered_model_name: str = REGISTERED_MODEL_NAME
    primary_metric: str = "macro_f1"  # a name of the evaluation's flat metrics, e.g. tta.multi_scale.macro_f1
    min_improvement: float = 0.0  # in the metric's own units
    split: str = "test"  # challenger and champion are scored on the same split

    @property
    def higher_is_better(self) -> bool:
        return not self.primary_metric.endswith("log_loss")


@dataclass(frozen=True)
class PromotionDecision:
    alias: Literal["champion", "challenger"]  # what the new version gets
    reason: str  # one sentence for tags and logs
    new_score: float
    champion_score: float | None  # None when there was no champion
    metric: str

    @property
    def promoted(self) -> bool:
        return self.alias == "champion"


def decide(
    new_score: float,
    champion_score: float | None,
    metric: str = "macro_f1",
    min_improvement: float = 0.0,
    higher_is_better: bool = True,
) -> PromotionDecision:
    """Champion when there is none, or when the new score beats the champion's by at
    least `min_improvement` (in the metric's own units); challenger otherwise.

    Both scores are compared at the registry's precision (`SCORE_DECIMALS`): the
    champion's usually comes back from a tag, and a model scored again must tie
    with the figure it was registered with.
    """
    if champion_score is None:
        return PromotionDecision("champion", "first model: no champion to compare with", new_score, None, metric)
    new, old = round(new_score, SCORE_DECIMALS), round(champion_score, SCORE_DECIMALS)
    gain = round((new - old) if higher_is_better else (old - new), SCORE_DECIMALS)
    if gain >= min_improvement and gain > 0:
        return PromotionDecision(
            "champion",
            f"{metric} {new_score:.4f} beats the champion's {champion_score:.4f} by {gain:.4f}",
            new_score,
            champion_score,
            metric,
        )
    return PromotionDecision(
        "challenger",
        f"{metric} {new_score:.4f} does not beat the champion's {champion_score:.4f} by {min_improvement:.4f}",
        new_score,
        champion_score,
        metric,
    )
