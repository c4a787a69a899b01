"""Predict the faces in a folder of images with a registered or saved model."""

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from zenml import step

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.inference.photos import faces_in_file, image_files
from ferkit.inference.predictor import MIN_CONFIDENCE, Predictor
from ferkit.registry import tracking
from ferkit.registry.store import load_trained_model
from steps import context


@step(enable_cache=False, experiment_tracker=context.TRACKER)
@context.stops_when_asked
def predict_folder(
    image_dir: str,
    fer_dataset: FERDataset | None = None,
    model_uri: str = "models:/fer_emotion@champion",
    detect: bool = True,
    int8: bool = False,
    calibration_images: int = 4096,
    seed: int = 0,
    raw: bool = False,
    min_confidence: float = MIN_CONFIDENCE,
) -> tuple[Annotated[pd.DataFrame, "predictions"], Annotated[np.ndarray, "faces"]]:
    """One row per face (file, box, label, confidence, uncertain, probabilities) and the 48x48 crops.

    Probabilities are calibrated with the model's temperature (fitted on val) unless `raw`; a
    face whose top probability is under `min_confidence` is `uncertain`. Unreadable files and
    images without a face get a row with an `error` and no label. `int8` quantizes the model
    first, calibrated on `calibration_images` training faces of `fer_dataset`.
    """
    folder = Path(image_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"image_dir '{folder}' is not a folder")
    calibration = None
    if int8:
        if fer_dataset is None:
            raise ValueError("int8 needs fer_dataset: its training faces calibrate the quantized model")
        train = fer_dataset.split("train").images
        rng = np.random.default_rng(seed)
        calibration = train[rng.choice(len(train), min(calibration_images, len(train)), replace=False)]
    predictor = Predictor(
        load_trained_model(model_uri), int8_calibration=calibration, raw=raw, min_confidence=min_confidence
    )
    rows, crops = [], []
    for path in image_files([folder]):
        found, name = faces_in_file(path, detect), str(path.relative_to(folder))
        if found.error:
            rows.append({"file": name, "error": found.error})
        crops += found.crops
        rows += [{"file": name, "box": list(box), "error": ""} for box in found.boxes]
    faces = np.stack(crops) if crops else np.zeros((0, 48, 48), np.uint8)
    probs = predictor.predict_proba(faces) if len(faces) else np.zeros((0, len(EMOTIONS)))
    predictions = pd.DataFrame(rows, columns=["file", "box", "error"])
    predictions["label"] = ""
    predictions["confidence"] = np.nan
    predictions["uncertain"] = pd.array([pd.NA] * len(predictions), dtype="boolean")
    for name in EMOTIONS:
        predictions[name] = np.nan
    face_rows = np.flatnonzero(predictions["error"].fillna("") == "")
    predictions.loc[face_rows, "label"] = [EMOTIONS[i] for i in probs.argmax(axis=1)]
    predictions.loc[face_rows, "confidence"] = probs.max(axis=1) if len(probs) else []
    predictions.loc[face_rows, "uncertain"] = probs.max(axis=1) < min_confidence if len(probs) else []
    predictions.loc[face_rows, list(EMOTIONS)] = probs
    predictions["box"] = predictions["box"].apply(lambda b: "" if not isinstance(b, list) else " ".join(map(str, b)))
    predictions["error"] = predictions["error"].fillna("")

    with tracking.ArtifactDir("predictions") as out:
        predictions.to_csv(out / "predictions.csv", index=False)
    tracking.log_params(
        {
            "model_uri": model_uri,
            "image_dir": str(folder),
            "detect": detect,
            "int8": int8,
            "raw": raw,
            "min_confidence": min_confidence,
            "temperature": predictor.temperature(),
        },
        prefix="batch",  # fmt: skip
    )
    tracking.log_metrics(
        {
            "images": predictions["file"].nunique(),
            "faces": len(faces),
            "errors": int((predictions["error"] != "").sum()),
            "uncertain": int(predictions["uncertain"].fillna(False).sum()),
        },
        prefix="batch",
    )
    return predictions, faces
