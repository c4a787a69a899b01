"""The champion/challenger decision, as plain data (the MLflow moves live in `ferkit.registry.promotion`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ferkit.registry.names import REGISTERED_MODEL_NAME

if TYPE_CHECKING:  # the CLI maps these errors to exit codes: importing them must not load numpy's stack
    from ferkit.metrics.paired import PairedComparison


class RegistryError(RuntimeError):
    """The registry or tracking store cannot give what was asked (no such model, no store, ...)."""


class PromotionError(RegistryError):
    """A registry move that cannot be made (already the champion, nothing to roll back to, ...)."""


@dataclass(frozen=True)
class Gate:
    """Where a model is registered and how it is compared with the champion.

    Challenger and champion are scored on the same images of the selection split (val,
    PublicTest; in retraining also the held-out new images) and compared with a paired
    bootstrap: the challenger is promoted only when the lower bound of its gain exceeds
    `min_improvement`. The test split is never read by a decision.
    """

    registered_model_name: str = REGISTERED_MODEL_NAME
    primary_metric: str = "macro_f1"  # a figure, or tta.<mode>.<figure> to score with those views
    min_improvement: float = 0.0  # the gain's lower confidence bound must exceed it (metric units); < 0 relaxes
    split: str = "val"  # the selection split; "test" is refused
    confidence: float = 0.95  # of the gain's interval
    resamples: int = 2000  # bootstrap resamples of the paired difference

    def __post_init__(self) -> None:
        if self.split == "test":
            raise ValueError(
                "the champion gate never reads the test split (PrivateTest is reported, not used to decide); "
                "use split: val"
            )
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence}")


@dataclass(frozen=True)
class PromotionDecision:
    alias: Literal["champion", "challenger"]  # what the new version gets
    reason: str  # one sentence for tags and logs
    new_score: float  # the new version's figure on the gate's images
    champion_score: float | None  # the champion's, on the same images; None when there was no champion
    metric: str
    comparison: PairedComparison | None = None  # the paired test behind the decision

    @property
    def promoted(self) -> bool:
        return self.alias == "champion"


def decide(
    new_score: float, comparison: PairedComparison | None, metric: str = "macro_f1", min_improvement: float = 0.0
) -> PromotionDecision:
    """Champion when there is none, or when the lower bound of the paired gain over the champion
    exceeds `min_improvement`; challenger otherwise. With the default 0, a gain that noise could
    explain does not promote; a negative value promotes unless the new model is worse by more
    than it (-1 promotes every version: a forced roll-out)."""
    if comparison is None:
        return PromotionDecision("champion", "first model: no champion to compare with", new_score, None, metric)
    clears = comparison.low > min_improvement
    verdict = "clears" if clears else "does not clear"
    reason = f"{metric} {comparison.describe()}: the lower bound {verdict} {min_improvement:.4f}"
    return PromotionDecision("champion" if clears else "challenger", reason, new_score, comparison.old, metric,
                             comparison)  # fmt: skip
