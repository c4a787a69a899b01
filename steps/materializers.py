"""ZenML materializers for ferkit's own types (ferkit itself never imports zenml)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, ClassVar

import numpy as np
from zenml.enums import ArtifactType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from ferkit.data.dataset import FERDataset
from ferkit.gan.oversample import TrainedGenerator
from ferkit.inference.evaluation import SplitProbabilities
from ferkit.models.checkpoint import TrainedModel

_DATASET_FILES = ("arrays.npz", "meta.json")
_MODEL_FILE = "model.pt"
_GENERATOR_FILE = "generator.pt"
_PROBABILITIES_FILES = ("probs.npy", "meta.json")


def _copy_dir(src: str, dst: str, names: tuple[str, ...]) -> None:
    fileio.makedirs(dst)
    for name in names:
        fileio.copy(os.path.join(src, name), os.path.join(dst, name), overwrite=True)


class FERDatasetMaterializer(BaseMaterializer):
    """Stores the decoded data set as raw uint8 arrays (.npz) plus a JSON report."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (FERDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> FERDataset:
        with tempfile.TemporaryDirectory() as tmp:
            _copy_dir(self.uri, tmp, _DATASET_FILES)
            return FERDataset.load(tmp)

    def save(self, data: FERDataset) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            data.save(tmp)
            _copy_dir(tmp, self.uri, _DATASET_FILES)

    def extract_metadata(self, data: FERDataset) -> dict[str, Any]:
        return {
            "images": len(data),
            "fingerprint": data.fingerprint,
            "splits": data.split_counts(),
            "converted": data.report.converted,
            "bad_files": len(data.report.bad_files),
            "synthetic": int(data.synthetic.sum()),  # GAN-made faces, train split only
        }

    def compute_content_hash(self, data: FERDataset) -> str | None:
        return data.fingerprint


class TrainedModelMaterializer(BaseMaterializer):
    """Stores a `TrainedModel` as one torch file loadable with weights_only=True."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (TrainedModel,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> TrainedModel:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, _MODEL_FILE)
            fileio.copy(os.path.join(self.uri, _MODEL_FILE), local)
            return TrainedModel.load(local)

    def save(self, data: TrainedModel) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, _MODEL_FILE)
            data.save(local)
            fileio.makedirs(self.uri)
            fileio.copy(local, os.path.join(self.uri, _MODEL_FILE), overwrite=True)

    def extract_metadata(self, data: TrainedModel) -> dict[str, Any]:
        return {
            "architecture": data.architecture,
            "parameters": int(sum(t.numel() for t in data.state_dict.values() if t.is_floating_point())),
            "emotions": ",".join(data.emotions),
        }


class GeneratorMaterializer(BaseMaterializer):
    """Stores the GAN's `TrainedGenerator` as one torch file loadable with weights_only=True."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (TrainedGenerator,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> TrainedGenerator:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, _GENERATOR_FILE)
            fileio.copy(os.path.join(self.uri, _GENERATOR_FILE), local)
            return TrainedGenerator.load(local)

    def save(self, data: TrainedGenerator) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, _GENERATOR_FILE)
            data.save(local)
            fileio.makedirs(self.uri)
            fileio.copy(local, os.path.join(self.uri, _GENERATOR_FILE), overwrite=True)

    def extract_metadata(self, data: TrainedGenerator) -> dict[str, Any]:
        return {
            "steps": int(data.config.get("steps", 0)),
            "train_seconds": round(data.seconds, 1),
            "emotions": ",".join(data.emotions),
        }


class SplitProbabilitiesMaterializer(BaseMaterializer):
    """Stores `SplitProbabilities` as the raw array (.npy) plus what identifies it (JSON)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (SplitProbabilities,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> SplitProbabilities:
        with tempfile.TemporaryDirectory() as tmp:
            _copy_dir(self.uri, tmp, _PROBABILITIES_FILES)
            with open(os.path.join(tmp, "meta.json")) as f:
                meta = json.load(f)
            probs = np.load(os.path.join(tmp, "probs.npy"), allow_pickle=False)
        return SplitProbabilities(meta["split"], meta["mode"], meta["fingerprint"], meta["weights_sha256"], probs)

    def save(self, data: SplitProbabilities) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            np.save(os.path.join(tmp, "probs.npy"), np.asarray(data.probs), allow_pickle=False)
            meta = {"split": data.split, "mode": data.mode, "fingerprint": data.fingerprint,
                    "weights_sha256": data.weights_sha256}  # fmt: skip
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump(meta, f)
            _copy_dir(tmp, self.uri, _PROBABILITIES_FILES)

    def extract_metadata(self, data: SplitProbabilities) -> dict[str, Any]:
        return {"split": data.split, "views": data.mode, "images": int(len(data.probs))}
