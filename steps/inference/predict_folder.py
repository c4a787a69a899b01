"""Predict the faces in a folder of images with a registered or saved model."""

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from zenml import step

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.inference.predictor import Predictor, detect_faces, to_face_array
from ferkit.models import TrainedModel
from steps import tracking

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _load_model(model_uri: str) -> TrainedModel:
    from ferkit.cli import load_trained_model  # resolves models:/ URIs against the active MLflow store

    return load_trained_model(model_uri)


@step(enable_cache=False)
def predict_folder(
    image_dir: str,
    fer_dataset: FERDataset | None = None,
    model_uri: str = "models:/fer_emotion@champion",
    detect: bool = True,
    int8: bool = False,
    calibration_images: int = 4096,
    seed: int = 0,
) -> tuple[Annotated[pd.DataFrame, "predictions"], Annotated[np.ndarray, "faces"]]:
    """One row per face (file, box, label, probabilities) and the 48x48 face crops.

    Unreadable files and images without a face get a row with an `error` and no label.
    `int8` quantizes the model first, calibrated on `calibration_images` training faces
    of `fer_dataset`.
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
    predictor = Predictor(_load_model(model_uri), int8_calibration=calibration)
    rows, crops = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(path) as img:
                gray = np.asarray(img.convert("L"))
        except (OSError, UnidentifiedImageError) as exc:
            rows.append({"file": str(path.relative_to(folder)), "error": f"cannot read image: {exc}"})
            continue
        boxes = detect_faces(gray) if detect else [(0, 0, gray.shape[1], gray.shape[0])]
        if not boxes:
            rows.append({"file": str(path.relative_to(folder)), "error": "no face found"})
        for x, y, w, h in boxes:
            crops.append(to_face_array(gray[y : y + h, x : x + w]))
            rows.append({"file": str(path.relative_to(folder)), "box": [x, y, w, h], "error": ""})
    faces = np.stack(crops) if crops else np.zeros((0, 48, 48), np.uint8)
    probs = predictor.predict_proba(faces) if len(faces) else np.zeros((0, len(EMOTIONS)))
    predictions = pd.DataFrame(rows, columns=["file", "box", "error"])
    predictions["label"] = ""
    for name in EMOTIONS:
        predictions[name] = np.nan
    face_rows = np.flatnonzero(predictions["error"].fillna("") == "")
    predictions.loc[face_rows, "label"] = [EMOTIONS[i] for i in probs.argmax(axis=1)]
    predictions.loc[face_rows, list(EMOTIONS)] = probs
    predictions["box"] = predictions["box"].apply(lambda b: "" if not isinstance(b, list) else " ".join(map(str, b)))
    predictions["error"] = predictions["error"].fillna("")

    with tracking.ArtifactDir("predictions") as out:
        predictions.to_csv(out / "predictions.csv", index=False)
    tracking.log_params({"model_uri": model_uri, "image_dir": str(folder), "detect": detect, "int8": int8},
                        prefix="batch")
    tracking.log_metrics({"images": predictions["file"].nunique(), "faces": len(faces),
                          "errors": int((predictions["error"] != "").sum())}, prefix="batch")
    return predictions, faces
