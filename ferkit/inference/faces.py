"""What every predictor shares, without torch: a face from any image, the faces in a photo
(OpenCV's cascade), and `FacePredictor`, faces in and labelled probabilities out.

`ferkit predict --model model.onnx` runs on this module and ONNX Runtime alone, so it starts
without loading torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.data.images import BadImage, ReadLimits, gray_pixels, pixel_array, read_file, read_gray
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE
from ferkit.models.temperature import apply_temperature  # noqa: F401 - predictors apply it

ImageLike = np.ndarray | Image.Image | bytes | str | Path


def to_face_array(image: ImageLike, limits: ReadLimits | None = None) -> np.ndarray:
    """Any image -> 48x48 uint8 grayscale, the way ingestion converts; `BadImage` says what is wrong.

    Encoded bytes and paths are read within `limits` (EXIF orientation applied, any mode);
    arrays are (H, W) or (H, W, 1|3|4) under `pixel_array`'s contract: integers 0-255, or
    floating point in [0, 1].
    """
    if isinstance(image, (str, Path)):
        image = read_file(image, limits or ReadLimits.from_env())
    if isinstance(image, (bytes, bytearray)):
        array = read_gray(bytes(image), limits).pixels
    elif isinstance(image, Image.Image):
        array = gray_pixels(image)
    elif isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[-1] in (1, 3, 4):
            channels = pixel_array(image)
            array = channels[..., 0] if image.shape[-1] == 1 else gray_pixels(Image.fromarray(channels))
        elif image.ndim == 2:
            array = pixel_array(image)
        else:
            raise BadImage(f"a face array must be (H, W) or (H, W, 1|3|4), got shape {image.shape}")
    else:
        raise TypeError(f"cannot read a face from {type(image).__name__}")
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE):
        array = np.asarray(Image.fromarray(array).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(array, dtype=np.uint8)


# A face whose top calibrated probability is under this is reported `uncertain` (its label stays the
# most likely emotion). With seven classes, chance is 0.14.
MIN_CONFIDENCE = 0.4


@dataclass(kw_only=True)
class FacePredictor:
    """What every predictor shares: faces in, probabilities, labels and confidence out.

    Probabilities are calibrated by default (temperature scaling fitted on val); `raw=True` gives
    the network's own. A face whose top probability is under `min_confidence` is `uncertain`
    (its label stays the most likely emotion). Subclasses compute `probabilities`.
    """

    raw: bool = False
    min_confidence: float = MIN_CONFIDENCE

    def __post_init__(self) -> None:
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence must be between 0 and 1, got {self.min_confidence}")

    def probabilities(self, batch: np.ndarray, raw: bool) -> np.ndarray:
        """(N, 7) probabilities for uint8 (N, 48, 48) faces."""
        raise NotImplementedError

    def predict_proba(self, faces: list[ImageLike] | np.ndarray, raw: bool | None = None) -> np.ndarray:
        """(N, 7) probabilities in `EMOTIONS` order, calibrated unless raw (`raw` overrides the predictor's)."""
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if isinstance(faces, np.ndarray) and faces.ndim == 3 and faces.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):
            batch = pixel_array(faces)
        else:
            batch = np.stack([to_face_array(face) for face in faces])
        return self.probabilities(batch, self.raw if raw is None else raw)

    def describe(self, probs: np.ndarray, min_confidence: float | None = None) -> dict:
        """One face's probabilities as {'label', 'confidence', 'uncertain', 'probabilities'}."""
        top = int(probs.argmax())
        threshold = self.min_confidence if min_confidence is None else min_confidence
        return {
            "label": EMOTIONS[top],
            "confidence": float(probs[top]),
            "uncertain": bool(probs[top] < threshold),
            "probabilities": {e: float(v) for e, v in zip(EMOTIONS, probs)},
        }

    def predict(self, faces) -> list[dict]:
        """[{'label': 'happy', 'confidence': 0.83, 'uncertain': False, 'probabilities': {...}}, ...]."""
        return [self.describe(p) for p in self.predict_proba(faces)]


def detect_faces(gray: np.ndarray, min_size: int = 30, scale_factor: float = 1.1) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h), largest first, from OpenCV's frontal-face Haar cascade."""
    boxes = _cascade().detectMultiScale(gray, scaleFactor=scale_factor, minNeighbors=5, minSize=(min_size, min_size))
    return sorted((tuple(int(v) for v in box) for box in boxes), key=lambda b: -b[2] * b[3])


@functools.cache
def _cascade():
    """OpenCV's frontal-face cascade, loaded once per process (a video asks for it every frame)."""
    import cv2

    return cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
