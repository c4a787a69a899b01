"""Score the trained model once on the test split (PrivateTest) and write the evaluation report."""

from typing import Annotated

from zenml import get_step_context, log_metadata, step
from zenml.types import HTMLString

from ferkit.data.dataset import FERDataset
from ferkit.inference import evaluate, write_report
from ferkit.inference.evaluation import REPORTED_MODES, SplitProbabilities
from ferkit.models import TrainedModel
from ferkit.quality.checks import train_copy_mask
from ferkit.registry import tracking
from steps import context
from steps.materializers import SplitProbabilitiesMaterializer


@step(output_materializers={"val_probabilities": SplitProbabilitiesMaterializer}, experiment_tracker=context.TRACKER)
@context.stops_when_asked
def evaluate_model(
    model: TrainedModel,
    fer_dataset: FERDataset,
    split: str = "test",
    tta: str | None = None,
    tta_modes: list[str] | None = None,
    fit_temperature: bool = True,
    bootstrap_resamples: int = 1000,
) -> tuple[
    Annotated[dict[str, float], "test_metrics"],
    Annotated[HTMLString, "evaluation_report"],
    Annotated[SplitProbabilities, "val_probabilities"],
]:
    """Headline figures, bootstrap CIs, calibration, TTA modes, named confusions and the
    leakage-free figures (test images with a pixel-identical train copy left out).

    `tta` picks the headline views (default: the recipe's); `tta_modes` the modes reported beside
    it (default: all four; a comparison of slow backbones reports fewer). `val_probabilities` are
    the model's on val (PublicTest) with the headline views, scored for the temperature: the
    champion gate takes them rather than scoring val again (none without `fit_temperature`)."""
    result = evaluate(
        model,
        fer_dataset,
        split=split,
        tta=tta,
        tta_modes=tuple(tta_modes) if tta_modes is not None else REPORTED_MODES,
        fit_temperature_on="val" if fit_temperature else None,
        leakage_mask=train_copy_mask(fer_dataset),
        bootstrap_resamples=bootstrap_resamples,
    )
    metrics = result.flat_metrics()
    metrics["images"] = float(result.images)
    tracking.log_metrics(metrics, prefix=split)
    with tracking.ArtifactDir("evaluation") as out:
        paths = write_report(result, out)
        html = paths["html"].read_text()
    if _in_model_context():
        log_metadata(metadata={split: metrics}, infer_model=True)
    return metrics, HTMLString(html), result.held_out or SplitProbabilities.nothing()


def _in_model_context() -> bool:
    """True inside a pipeline run that is tied to a ZenML model (configs set `model:`)."""
    if not context.in_step():
        return False
    try:
        return get_step_context().model is not None
    except (RuntimeError, ValueError):
        return False
