"""From photo files to face crops: which files are images, reading them, finding the faces.

`ferkit predict` and the batch-inference step both go through `faces_in_file`, so a file
that cannot be read or holds no face is reported the same way by each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferkit.data.labels import IMAGE_SUFFIXES
from ferkit.inference.predictor import detect_faces, to_face_array

Box = tuple[int, int, int, int]  # x, y, width, height in the photo's pixels


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Each path as given; a folder gives its image files (by suffix), recursively and sorted."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


@dataclass
class PhotoFaces:
    """The faces found in one photo: boxes and 48x48 crops, or the reason there are none."""

    boxes: list[Box] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)  # uint8 (48, 48) each
    error: str = ""  # "cannot read image: ...", "no face found", or "" when faces were found


def faces_in_file(path: str | Path, detect: bool = True) -> PhotoFaces:
    """Read `path` as grayscale and crop its faces (the whole image as one face without `detect`)."""
    try:
        with Image.open(path) as img:
            gray = np.asarray(img.convert("L"))
    except (OSError, UnidentifiedImageError) as exc:
        return PhotoFaces(error=f"cannot read image: {exc}")
    boxes = detect_faces(gray) if detect else [(0, 0, gray.shape[1], gray.shape[0])]
    crops = [to_face_array(gray[y : y + h, x : x + w]) for x, y, w, h in boxes]
    return PhotoFaces(boxes=list(boxes), crops=crops, error="" if boxes else "no face found")
