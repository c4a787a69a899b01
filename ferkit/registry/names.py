"""The registry's vocabulary: model name, aliases, artifact paths and tag names, defined once."""

REGISTERED_MODEL_NAME = "fer_emotion"
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
CHECKPOINT_ARTIFACT = "checkpoint/ferkit_model.pt"  # the ferkit checkpoint inside every registered run

WEIGHTS_TAG = "model.weights_sha256"  # TrainedModel.weights_sha256(): the same weights are registered once
DATA_ARTIFACT_TAG = "data.artifact_version_id"  # the ZenML artifact of the data a version trained on
HOLDOUT_ARTIFACT_TAG = "data.holdout_artifact_version_id"  # the held-out new images of a retraining line
ZENML_VERSION_TAG = "zenml.model_version_id"  # the ZenML model version mirrored from this one
GATE_PENDING = "promotion.pending"  # on a version until its aliases moved: a rerun of its weights finishes the gate
DUPLICATE_OF = "registry.duplicate_of"  # run tag and ZenML metadata: the version that holds these weights
