"""GAN oversampling of minority emotions: train the conditional GAN, add its faces to train, score them."""

from typing import Annotated

from zenml import ArtifactConfig, step
from zenml.enums import ArtifactType
from zenml.materializers.built_in_materializer import BuiltInMaterializer

from ferkit.data.dataset import FERDataset
from ferkit.gan.oversample import OversampleConfig, TrainedGenerator, oversample
from ferkit.gan.quality import QualityConfig, assess, markdown, metrics, write_plots
from ferkit.registry import tracking
from steps import context
from steps.materializers import GeneratorMaterializer


# None (nothing trained) is stored by the built-in materializer.
@step(
    output_materializers={"generator": (GeneratorMaterializer, BuiltInMaterializer)}, experiment_tracker=context.TRACKER
)
@context.stops_when_asked
def oversample_minority(
    fer_dataset: FERDataset, config: OversampleConfig | None = None, quality: QualityConfig | None = None
) -> tuple[
    Annotated[FERDataset, "oversampled_dataset"],
    Annotated[TrainedGenerator | None, ArtifactConfig(name="generator", artifact_type=ArtifactType.MODEL)],
    Annotated[dict, "gan_quality"],
]:
    """Synthetic faces for the configured emotions join train (marked synthetic); val and test stay real.

    Off (the default) or with every target already met, the data passes through, no GAN
    is trained and the generator output is None. With unchanged data and config the
    step is cached: the GAN is not trained again.
    """
    config = config or OversampleConfig()
    quality = quality or QualityConfig()
    tracking.log_params(config.model_dump(mode="json"), prefix="oversample")
    out, generator, plan = oversample(
        fer_dataset, config, callbacks=[lambda step, figures: tracking.log_metrics(figures, step=step)]
    )
    tracking.log_metrics({f"added.{emotion}": n for emotion, n in plan.items()}, prefix="oversample")
    if generator is None:
        return out, None, {"enabled": config.enabled, "added": plan}
    tracking.log_metrics({"train_seconds": generator.seconds}, prefix="gan")
    result = assess(generator, fer_dataset, quality, emotions=tuple(plan))
    report = {"enabled": True, "added": plan, "train_seconds": round(generator.seconds, 1), **result.report}
    tracking.log_metrics(metrics(result.report), prefix="gan")
    with tracking.ArtifactDir("gan") as folder:
        write_plots(result, folder)
        (folder / "quality.md").write_text(markdown(result.report))
        generator.save(folder / "generator.pt")
    tracking.log_dict(report, "gan/quality.json")
    return out, generator, report
