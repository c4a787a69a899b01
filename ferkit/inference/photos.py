"""From photo files to face crops: which files are images, reading them, finding the faces.

`ferkit predict` and the batch-inference step both go through `faces_in_file`, so a file
that cannot be read or holds no face is reported the same way by each.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ferkit.data.images import FORMATS, BadImage, ReadLimits, read_file, read_gray
from ferkit.data.labels import IMAGE_SUFFIXES
from ferkit.inference.faces import detect_faces, to_face_array
from ferkit.runtime import freed_memory_returned

Box = tuple[int, int, int, int]  # x, y, width, height in the photo's pixels


def image_files(paths: Iterable[str | Path], extra_suffixes: Iterable[str] = ()) -> list[Path]:
    """Each path as given; a folder gives its image files (by suffix, and `extra_suffixes`: videos
    for `predict`), recursively and sorted."""
    suffixes = {*IMAGE_SUFFIXES, *extra_suffixes}
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
        else:
            files.append(path)
    return files


@dataclass
class PhotoFaces:
    """The faces found in one photo: boxes and 48x48 crops, or the reason there are none."""

    boxes: list[Box] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)  # uint8 (48, 48) each
    error: str = ""  # "cannot read image: ...", "no face found", or "" when faces were found
    size: tuple[int, int] = (0, 0)  # width and height of the photo as read (EXIF turn applied)


# Faces are found on a copy of at most this many pixels on the long side: OpenCV's cascade needs
# about 34 bytes per pixel it scans, so a 48-megapixel photo would cost gigabytes at full size.
DETECT_SIDE = 1600


def faces_in_file(path: str | Path, detect: bool = True, limits: ReadLimits | None = None) -> PhotoFaces:
    """Read `path` as grayscale within `limits` and crop its faces (the whole image as one face without
    `detect`); a file that cannot be read gets the same reason the data readers give."""
    limits = limits or ReadLimits.from_env()
    with freed_memory_returned():  # its bytes, pixels and the detector's buffers: none kept for reuse
        return _faces_in_file(path, detect, limits)


def _faces_in_file(path: str | Path, detect: bool, limits: ReadLimits) -> PhotoFaces:
    try:
        gray = read_gray(read_file(path, limits), limits).pixels
    except BadImage as exc:
        return PhotoFaces(error=f"cannot read image: {exc}")
    boxes = detect_in(gray) if detect else [(0, 0, gray.shape[1], gray.shape[0])]
    crops = [to_face_array(gray[y : y + h, x : x + w]) for x, y, w, h in boxes]
    size = (gray.shape[1], gray.shape[0])
    return PhotoFaces(boxes=list(boxes), crops=crops, error="" if boxes else "no face found", size=size)


# Annotated copies are drawn at most this many pixels on the long side.
ANNOTATE_SIDE = 2048
_COLOUR_MODES = ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr", "1")


def display_copy(path: str | Path, size: tuple[int, int], limits: ReadLimits | None = None) -> np.ndarray:
    """The photo in colour, EXIF turn applied, at most `ANNOTATE_SIDE` on its long side: what
    annotations are drawn on. `size` is the (width, height) the faces' boxes refer to, from
    `faces_in_file`; the copy keeps its proportions. Call it on a file `faces_in_file` read."""
    limits = limits or ReadLimits.from_env()
    side = (ANNOTATE_SIDE, ANNOTATE_SIDE)
    with Image.open(io.BytesIO(read_file(path, limits)), formats=FORMATS) as img:
        img.draft("RGB", side)  # JPEG: decode at a reduced scale; others ignore it
        if img.mode not in _COLOUR_MODES:  # 16-bit or float: the grayscale reading, as the model saw it
            gray = read_gray(read_file(path, limits), limits).pixels
            img = Image.fromarray(gray)
        img.thumbnail(side)
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    scale = min(ANNOTATE_SIDE / max(size), 1.0) if max(size) else 1.0
    target = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    return np.asarray(rgb if rgb.size == target else rgb.resize(target, Image.Resampling.BILINEAR))


def detect_in(gray: np.ndarray, side: int = DETECT_SIDE, scale_factor: float = 1.1) -> list[Box]:
    """Face boxes in `gray`'s pixels, found on a copy no longer than `side` on either side (faces
    of at least 30 px in `gray`, or 12 in the copy); `scale_factor` is the cascade's step between
    sizes (1.1 for photos; video frames use a coarser step and a smaller copy)."""
    scale = max(gray.shape) / side
    if scale <= 1:
        return detect_faces(gray, scale_factor=scale_factor)
    # At least a pixel each way: a strip thousands of times longer than wide shrinks to one pixel, not none.
    small_size = (max(1, round(gray.shape[1] / scale)), max(1, round(gray.shape[0] / scale)))
    small = Image.fromarray(gray).resize(small_size, Image.BILINEAR)
    boxes = detect_faces(np.asarray(small), min_size=max(12, round(30 / scale)), scale_factor=scale_factor)
    height, width = gray.shape
    return [
        (
            min(round(x * scale), width - 1),
            min(round(y * scale), height - 1),
            max(1, round(w * scale)),
            max(1, round(h * scale)),
        )
        for x, y, w, h in boxes
    ]
