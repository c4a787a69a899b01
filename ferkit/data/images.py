"""Opening one image file safely: bounded in bytes and pixels, turned the way a viewer shows it,
and converted to 8-bit grayscale whatever its mode.

Every entry point that reads pictures goes through `read_gray`: the data readers (zip,
folder), `ferkit predict`, batch inference and the served model. So the same bad file gets
the same answer everywhere: a `BadImage` whose message says what is wrong with it.

The limits (`ReadLimits`) are generous for face data sets and photos and come from the
environment, so one setting covers the CLI, the pipelines and the model server:

| variable                   | default     | what it bounds                                    |
|----------------------------|-------------|---------------------------------------------------|
| FERKIT_MAX_IMAGE_PIXELS    | 50,000,000  | width x height of one image, checked before decoding |
| FERKIT_MAX_FILE_MB         | 64          | bytes of one file or zip member                   |
| FERKIT_MAX_ARCHIVE_MB      | 8192        | uncompressed bytes of all members of an archive   |
| FERKIT_MAX_FILES           | 300,000     | files in one archive, folder or CSV (rows)        |
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, fields
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferkit.data.errors import DataError

MB = 1 << 20
LIMIT_ENV = {
    "max_image_pixels": "FERKIT_MAX_IMAGE_PIXELS",
    "max_file_bytes": "FERKIT_MAX_FILE_MB",
    "max_archive_bytes": "FERKIT_MAX_ARCHIVE_MB",
    "max_files": "FERKIT_MAX_FILES",
}
_IN_MB = ("max_file_bytes", "max_archive_bytes")
# A face is a few thousand pixels; a 50-megapixel photo decodes to 150 MB of RGB. Pillow's own
# bound (89 million pixels, an error only at twice that) lets one file take gigabytes.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
ORIENTATION_TAG = 0x0112  # EXIF


PixelRange = Literal["0-255", "0-1"]
PIXEL_RANGES = ("0-255", "0-1")


class BadImage(DataError):
    """One file is not a readable image within the limits; the message says why (without the name)."""


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what one read may cost; an input over a bound is a named bad file, never a crash."""

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # width x height of one image, before decoding
    max_file_bytes: int = 64 * MB  # one file or zip member (uncompressed)
    max_archive_bytes: int = 8192 * MB  # all members of one archive together (uncompressed)
    max_files: int = 300_000  # files in one archive or folder, rows in one CSV

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"read limit {f.name} must be positive, got {getattr(self, f.name)}")

    @classmethod
    def from_env(cls, **overrides: int) -> ReadLimits:
        """Defaults, replaced by the FERKIT_MAX_* variables that are set, replaced by `overrides`."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown read limit(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        values: dict[str, int] = {}
        for name, variable in LIMIT_ENV.items():
            raw = os.environ.get(variable, "").strip()
            if not raw:
                continue
            try:
                number = float(raw)
            except ValueError:
                raise ValueError(f"${variable}={raw!r} is not a number") from None
            values[name] = int(number * MB) if name in _IN_MB else int(number)
        return cls(**{**values, **overrides})

    def describe(self) -> str:
        return (
            f"{self.max_image_pixels:,} pixels per image, {self.max_file_bytes / MB:g} MB per file, "
            f"{self.max_archive_bytes / MB:g} MB per archive, {self.max_files:,} files"
        )


def env_hint(limit: str) -> str:
    """Where a user raises `limit` (a `ReadLimits` field name)."""
    unit = " (in MB)" if limit in _IN_MB else ""
    return f"raise it with ${LIMIT_ENV[limit]}{unit}"


def read_bounded(file: BinaryIO, limits: ReadLimits, declared: int | None = None) -> bytes:
    """All of `file`, refusing more than `limits.max_file_bytes` whatever a header declared."""
    cap = limits.max_file_bytes
    if declared is not None and declared > cap:
        raise BadImage(
            f"file is {declared / MB:.1f} MB, over the limit of {cap / MB:g} MB; {env_hint('max_file_bytes')}"
        )
    raw = file.read(cap + 1)
    if len(raw) > cap:
        raise BadImage(f"file is over the limit of {cap / MB:g} MB; {env_hint('max_file_bytes')}")
    return raw


@dataclass
class GrayImage:
    """An image as 8-bit grayscale, with what had to change to get there."""

    pixels: np.ndarray  # (H, W) uint8
    size: tuple[int, int]  # (width, height) as stored
    mode: str  # Pillow mode as stored
    notes: tuple[str, ...]  # conversions applied: "rotated", "alpha", "16-bit", "cmyk", "palette", "animated", ...


def read_gray(raw: bytes, limits: ReadLimits | None = None) -> GrayImage:
    """Decode encoded image bytes to grayscale within `limits`; raises `BadImage` with the reason.

    The pixel count is checked from the header before any decoding; a JPEG over the
    count is decoded at a reduced scale (draft mode) when that brings it under.
    """
    limits = limits or ReadLimits.from_env()
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limits.max_image_pixels:
        Image.MAX_IMAGE_PIXELS = limits.max_image_pixels  # only ever raised, to a bound the user set
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own bound is lower
            with Image.open(io.BytesIO(raw)) as img:
                return _to_gray(img, limits)
    except BadImage:
        raise
    except Image.DecompressionBombError:  # Pillow's own check, in `open`, before ours
        raise BadImage(
            f"image has more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, over the limit of "
            f"{limits.max_image_pixels:,}; {env_hint('max_image_pixels')}"
        ) from None
    except UnidentifiedImageError:
        raise BadImage("not an image file (unknown format)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, IndexError, TypeError) as exc:
        raise BadImage(f"cannot decode image: {exc}") from None


def _to_gray(img: Image.Image, limits: ReadLimits) -> GrayImage:
    size, mode, notes = img.size, img.mode, []
    if size[0] * size[1] > limits.max_image_pixels:
        if img.format == "JPEG":
            img.draft("L", _draft_target(size, limits.max_image_pixels))
        if img.size[0] * img.size[1] > limits.max_image_pixels:
            raise BadImage(
                f"image is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, over the limit of "
                f"{limits.max_image_pixels:,}; {env_hint('max_image_pixels')}"
            )
        notes.append("reduced")
    if getattr(img, "is_animated", False):
        img.seek(0)
        notes.append("animated")
    img.load()
    if img.getexif().get(ORIENTATION_TAG, 1) not in (0, 1):
        img = ImageOps.exif_transpose(img)  # a sideways phone photo, read the way a viewer shows it
        notes.append("rotated")
    return GrayImage(pixels=gray_pixels(img, notes), size=size, mode=mode, notes=tuple(notes))


def _draft_target(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """The size to ask JPEG draft mode for: the image scaled under `max_pixels` (draft picks >= it)."""
    scale = (max_pixels / (size[0] * size[1])) ** 0.5
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def gray_pixels(img: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """(H, W) uint8 of any mode: 16-bit scaled (not clipped), alpha laid on white, CMYK and palettes converted."""
    mode, notes = img.mode, notes if notes is not None else []
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        notes.append("16-bit")
        wide = np.asarray(img).astype(np.int64)
        return (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)  # Pillow's convert("L") would clip at 255
    if mode == "F":
        notes.append("float")
        return np.clip(np.nan_to_num(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
    if mode == "P":
        notes.append("palette")
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "CMYK":
        notes.append("cmyk")
        img = img.convert("RGB")
    elif mode == "1":
        notes.append("1-bit")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (img.mode == "L" and "transparency" in img.info):
        notes.append("alpha")
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)  # a viewer shows transparent parts on a light page
    if img.mode != "L":
        if mode not in ("P", "CMYK", "1") and "alpha" not in notes:
            notes.append(f"mode {mode}")
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def pixel_array(values: object, pixel_range: PixelRange | None = None) -> np.ndarray:
    """Pixel values as uint8 under an explicit contract, never guessed from the values.

    `pixel_range` "0-255": whole numbers 0-255; "0-1": numbers in [0, 1], scaled by 255.
    Without it the dtype declares it: floating point is 0-1, integers are 0-255.
    """
    try:
        array = np.asarray(values)
        if array.dtype == object:
            array = array.astype(np.float64)
    except (ValueError, TypeError):
        raise BadImage("pixels are not a rectangular array of numbers (ragged rows or non-numbers)") from None
    if array.dtype.kind not in "iuf":
        raise BadImage(f"pixels must be numbers, got {array.dtype}")
    if array.size == 0:
        raise BadImage("pixels are empty")
    if pixel_range is None:
        pixel_range = "0-1" if array.dtype.kind == "f" else "0-255"
    if pixel_range not in PIXEL_RANGES:
        raise BadImage(f"pixel_range must be one of {list(PIXEL_RANGES)}, got {pixel_range!r}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadImage("pixels hold NaN or infinite values")
    low, high = array.min(), array.max()
    if pixel_range == "0-1":
        if low < 0 or high > 1:
            raise BadImage(f"pixels declared 0-1 hold values from {low:g} to {high:g}")
        return np.rint(array.astype(np.float64) * 255).astype(np.uint8)
    if low < 0 or high > 255:
        raise BadImage(f"pixels must lie in 0-255, found values from {low:g} to {high:g}")
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise BadImage("pixels in 0-255 must be whole numbers; declare pixel_range '0-1' for values in [0, 1]")
    return array.astype(np.uint8)
