"""The champion a retraining run starts from, and the data it was trained on."""

from typing import Annotated

import mlflow
from zenml import step
from zenml.client import Client

from ferkit.data import read_fer2013
from ferkit.data.dataset import FERDataset
from ferkit.models import TrainedModel
from ferkit.registry import promotion, tracking
from ferkit.registry.decision import RegistryError
from ferkit.registry.names import CHAMPION, DATA_ARTIFACT_TAG, HOLDOUT_ARTIFACT_TAG, REGISTERED_MODEL_NAME
from ferkit.registry.store import fetch_checkpoint
from ferkit.retraining import empty_dataset
from steps import context
from steps.materializers import FERDatasetMaterializer, TrainedModelMaterializer


@step(
    enable_cache=False,
    experiment_tracker=context.TRACKER,
    output_materializers={
        "champion": TrainedModelMaterializer,
        "champion_data": FERDatasetMaterializer,
        "champion_holdout": FERDatasetMaterializer,
    },
)
@context.stops_when_asked
def load_champion(
    registered_model_name: str = REGISTERED_MODEL_NAME, data_path: str | None = None
) -> tuple[
    Annotated[TrainedModel, "champion"],
    Annotated[FERDataset, "champion_data"],
    Annotated[FERDataset, "champion_holdout"],
    Annotated[dict, "champion_info"],
]:
    """The registry's `champion`, its checkpoint, and its training data.

    The data is the ZenML artifact the champion's registry version names (so a line of
    retrainings keeps every batch merged so far); a champion registered without that tag
    falls back to reading `data_path` (else $FER2013_PATH). The held-out new images of the
    line come from the artifact its `data.holdout_artifact_version_id` tag names (none
    before the first retraining).
    """
    client = mlflow.MlflowClient()
    champion = promotion.version_by_alias(client, registered_model_name, CHAMPION)
    if champion is None:
        raise RegistryError(
            f"{registered_model_name} has no champion to retrain: run fer_training first "
            "(make train), or promote a version with `ferkit promote VERSION`"
        )
    model = fetch_checkpoint(champion.run_id, f"{registered_model_name} v{champion.version}")
    tags = champion.tags or {}
    artifact_id = tags.get(DATA_ARTIFACT_TAG)
    if artifact_id:
        data = Client().get_artifact_version(artifact_id).load()
        source = f"ZenML artifact {artifact_id}"
    else:
        data = read_fer2013(data_path)
        source = f"{data.report.source} (the champion has no {DATA_ARTIFACT_TAG} tag)"
    holdout_id = tags.get(HOLDOUT_ARTIFACT_TAG)
    holdout = Client().get_artifact_version(holdout_id).load() if holdout_id else empty_dataset()
    info = {
        "name": registered_model_name,
        "version": str(champion.version),
        "run_id": champion.run_id,
        "data_source": source,
        "data_fingerprint": data.fingerprint,
    }
    tracking.log_params({k: v for k, v in info.items() if k != "run_id"}, prefix="champion")
    print(f"retraining from {registered_model_name} v{champion.version}; its data: {source}")
    return model, data, holdout, info
