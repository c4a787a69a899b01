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
import math
import os
import stat
import warnings
from dataclasses import dataclass, fields
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferkit.data.errors import DataError, raised_by_a_signal_handler
from ferkit.runtime import freed_memory_returned

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


class LimitSettingError(ValueError):
    """A read limit set to something that is not a positive finite number; the message names it."""


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
                raise LimitSettingError(f"read limit {f.name} must be positive, got {getattr(self, f.name)}")

    @classmethod
    def from_env(cls, **overrides: int) -> ReadLimits:
        """Defaults, replaced by the FERKIT_MAX_* variables that are set, replaced by `overrides`."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise LimitSettingError(f"unknown read limit(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        values: dict[str, int] = {}
        for name, variable in LIMIT_ENV.items():
            raw = os.environ.get(variable, "").strip()
            if not raw:
                continue
            try:
                number = float(raw)
            except ValueError:
                raise LimitSettingError(f"${variable}={raw!r} is not a number") from None
            if not math.isfinite(number) or number <= 0:
                raise LimitSettingError(f"${variable}={raw!r} must be a positive finite number")
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


def read_file(path: str | os.PathLike, limits: ReadLimits) -> bytes:
    """The bytes of the regular file at `path` within `limits`: a FIFO, a device or a socket is refused
    without blocking, and an unreadable file is a `BadImage` with the system's reason."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BadImage(f"cannot open file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadImage("not a regular file (a pipe, device or socket)")
        try:
            return read_bounded(file, limits, declared=info.st_size)
        except OSError as exc:
            raise BadImage(f"cannot read file: {exc.strerror or exc}") from None


@dataclass
class GrayImage:
    """An image as 8-bit grayscale, with what had to change to get there."""

    pixels: np.ndarray  # (H, W) uint8
    size: tuple[int, int]  # (width, height) as stored
    mode: str  # Pillow mode as stored
    notes: tuple[str, ...]  # conversions applied: "rotated", "alpha", "16-bit", "cmyk", "palette", "animated", ...


# The formats a face file may be in (IMAGE_SUFFIXES): Pillow identifies a file by its content, so
# without this a file named .png could reach a decoder for EPS (Ghostscript) or DDS.
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")  # JPEG covers the MPO files phone cameras write
# Pillow refuses in `open` above twice its MAX_IMAGE_PIXELS; a JPEG up to 64 times over our limit can
# still be decoded at 1/8 scale, so the bound in force while opening leaves room for that.
_DRAFT_ROOM = 64


def read_gray(raw: bytes, limits: ReadLimits | None = None) -> GrayImage:
    """Decode encoded image bytes to grayscale within `limits`; raises `BadImage` with the reason.

    The byte count is checked first and the pixel count from the header before any decoding; a
    JPEG over the pixel count is decoded at a reduced scale (1/2, 1/4 or 1/8, draft mode) when
    that brings it under.
    """
    limits = limits or ReadLimits.from_env()
    if len(raw) > limits.max_file_bytes:
        raise BadImage(
            f"file is {len(raw) / MB:.1f} MB, over the limit of {limits.max_file_bytes / MB:g} MB; "
            f"{env_hint('max_file_bytes')}"
        )
    room = limits.max_image_pixels * _DRAFT_ROOM
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < room:
        Image.MAX_IMAGE_PIXELS = room  # only ever raised; our own bound, checked next, is lower
    try:
        with warnings.catch_warnings(), freed_memory_returned():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=FORMATS) as img:
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
    except MemoryError:
        raise BadImage("image too large to decode in the memory available") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on hostile bytes is this file's fault
        if raised_by_a_signal_handler(exc):  # a stop request that landed in the decoder
            raise
        raise BadImage(f"cannot decode image: {type(exc).__name__}: {exc}") from None


def _to_gray(img: Image.Image, limits: ReadLimits) -> GrayImage:
    size, mode, notes = img.size, img.mode, []
    if size[0] * size[1] > limits.max_image_pixels:
        # A progressive JPEG keeps every coefficient of the whole image while it decodes, reduced or
        # not (2 bytes a pixel and channel: 760 MB for a 1.5 MB file of 20,000 x 20,000), so only a
        # baseline one is decoded reduced.
        progressive = bool(img.info.get("progressive") or img.info.get("progression"))
        reducible = img.format in ("JPEG", "MPO") and not progressive
        scale = _draft_scale(size, limits.max_image_pixels) if reducible else None
        if scale is None:
            raise BadImage(
                f"image is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, over the limit of "
                f"{limits.max_image_pixels:,}{' (a progressive JPEG is never decoded reduced)' * progressive}; "
                f"{env_hint('max_image_pixels')}"
            )
        img.draft("L", (max(1, size[0] // scale), max(1, size[1] // scale)))  # draft divides by this
        if img.size[0] * img.size[1] > limits.max_image_pixels:
            raise BadImage(
                f"image is {size[0]}x{size[1]}, over the limit of {limits.max_image_pixels:,} pixels even reduced"
            )
        notes.append("reduced")
    if getattr(img, "is_animated", False):
        img.seek(0)
        notes.append("animated")
    img.load()
    turn = _orientation_turn(img)
    pixels = _gray_in_stripes(img, notes)
    if turn is not None:  # a sideways phone photo, read the way a viewer shows it; turned once gray (1 byte/px)
        pixels = np.ascontiguousarray(turn(pixels))
        notes.append("rotated")
    return GrayImage(pixels=pixels, size=size, mode=mode, notes=tuple(notes))


STRIPE_ROWS = 256  # rows converted at a time: a full-size RGBA or 16-bit temporary would cost gigabytes


def _gray_in_stripes(img: Image.Image, notes: list[str]) -> np.ndarray:
    """`gray_pixels` of the whole image, converted a stripe of rows at a time into one uint8 array."""
    width, height = img.size
    if height <= STRIPE_ROWS:
        return gray_pixels(img, notes)
    out = np.empty((height, width), dtype=np.uint8)
    for top in range(0, height, STRIPE_ROWS):
        bottom = min(top + STRIPE_ROWS, height)
        out[top:bottom] = gray_pixels(img.crop((0, top, width, bottom)), notes if top == 0 else [])
    return out


def _draft_scale(size: tuple[int, int], max_pixels: int) -> int | None:
    """The JPEG decoding scale (2, 4 or 8) that brings `size` under `max_pixels`; None when none does."""
    for scale in (2, 4, 8):
        if -(-size[0] // scale) * -(-size[1] // scale) <= max_pixels:
            return scale
    return None


# EXIF orientation -> the turn that shows the image upright, on an (H, W) array.
_TURNS = {
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: np.rot90(np.fliplr(a), 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(np.fliplr(a), -1),
    8: lambda a: np.rot90(a, 1),
}


def _orientation_turn(img: Image.Image):
    """The turn the EXIF orientation asks for; a broken EXIF block counts as none."""
    try:
        orientation = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception as exc:  # noqa: BLE001 - metadata only: the pixels are still good
        if raised_by_a_signal_handler(exc):
            raise
        return None
    return _TURNS.get(orientation) if isinstance(orientation, int) else None


def gray_pixels(img: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """(H, W) uint8 of any mode: 16-bit scaled (not clipped), alpha laid on white, CMYK and palettes
    converted; at most one full-size temporary beyond the result."""
    mode, notes = img.mode, notes if notes is not None else []
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        notes.append("16-bit")
        return (np.asarray(img).astype(np.uint16, copy=False) >> 8).astype(np.uint8)  # convert("L") clips at 255
    if mode == "I":
        notes.append("16-bit")
        wide = np.asarray(img)  # int32, from 16-bit files
        return (np.clip(wide, 0, 65535, out=wide.copy()) >> 8).astype(np.uint8)
    if mode == "F":
        notes.append("float")
        values = np.asarray(img, dtype=np.float32).copy()
        np.nan_to_num(values, copy=False)
        return np.clip(values, 0, 255, out=values).astype(np.uint8)
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
        return _on_white(img)
    if img.mode != "L":
        if mode not in ("P", "CMYK", "1"):
            notes.append(f"mode {mode}")
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def _on_white(img: Image.Image) -> np.ndarray:
    """Gray laid on a white page by its alpha, as a viewer shows transparent parts: g*a + 255*(1-a)."""
    la = img.convert("LA")  # 2 bytes per pixel
    gray, alpha = (np.asarray(band, dtype=np.uint16) for band in la.split())
    return ((gray * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


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
    except OverflowError:  # a whole number past any float (JSON allows any length)
        raise BadImage("pixels hold a number too large for any pixel range") from None
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
