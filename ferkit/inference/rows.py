"""Predicting a table of faces row by row, as the served model does: each row gets its
prediction or an `error` naming what is wrong with it, and one bad row never fails the others.

The contract per row: `image` (encoded image bytes, any format and mode Pillow reads, within
`ReadLimits`) or `pixels` (a 2-D grayscale array). Pixel values are whole numbers 0-255
unless the row's `pixel_range` says "0-1"; they are never rescaled because of their values.
A request that is malformed as a whole (not a table, no `image` or `pixels` column, too many
rows) raises `RequestError`, which the server answers with HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ferkit.data.images import MB, PIXEL_RANGES, BadImage, ReadLimits, env_hint, pixel_array, read_gray
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE
from ferkit.inference.faces import FacePredictor, to_face_array

INPUT_COLUMNS = ("image", "pixels", "pixel_range")
MAX_ROWS = 4096  # one request; a larger batch is split by the client


class RequestError(ValueError):
    """The request as a whole cannot be read; the message says why."""


def face_of_row(row: dict, limits: ReadLimits) -> np.ndarray:
    """The 48x48 uint8 face of one row; `BadImage` names what is wrong with it."""
    image, pixels = row.get("image"), row.get("pixels")
    has_image = image is not None and not (isinstance(image, float) and np.isnan(image))
    has_pixels = pixels is not None and not (isinstance(pixels, float) and np.isnan(pixels))
    if has_image and has_pixels:
        raise BadImage("give `image` or `pixels`, not both")
    if has_image:
        return to_face_array(read_gray(_image_bytes(image, limits), limits).pixels)
    if has_pixels:
        pixel_range = row.get("pixel_range")
        if pixel_range is None or (isinstance(pixel_range, float) and np.isnan(pixel_range)):
            pixel_range = "0-255"  # a row without it, in a table where another row has it
        if not isinstance(pixel_range, str) or pixel_range not in PIXEL_RANGES:  # an array cell: no `in`
            raise BadImage(f"`pixel_range` must be one of {list(PIXEL_RANGES)}, got {_shown(pixel_range)}")
        _check_size(pixels, limits)
        values = pixels.tolist() if isinstance(pixels, np.ndarray) and pixels.dtype == object else pixels
        array = pixel_array(values, pixel_range)
        if array.ndim == 1:
            raise BadImage(
                f"`pixels` is 1-D ({array.size} values); give a 2-D array of rows, e.g. {IMAGE_SIZE} rows "
                f"of {IMAGE_SIZE} values"
            )
        if array.ndim != 2:
            raise BadImage(f"`pixels` must be a 2-D grayscale array, got {array.ndim} dimensions")
        return to_face_array(array)
    raise BadImage("the row has neither `image` nor `pixels`")


def _shown(value: object) -> str:
    """A short repr of a request value (a cell may hold an array of any size)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _check_size(values: object, limits: ReadLimits) -> None:
    """Refuse pixels over the pixel limit, or nested deeper than rows of numbers, before numpy
    copies them: an array by its size, nested lists by the sum of their rows' lengths."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        count = values.size
    elif isinstance(values, (list, tuple, np.ndarray)):
        count = 0
        for row in values:
            if isinstance(row, (list, tuple, np.ndarray)):
                # A third level would count one value a row however long. Numpy copies a deeper array
                # only when it is rectangular, so each row's first value tells (a ragged one it refuses).
                if len(row) and isinstance(row[0], (list, tuple, np.ndarray)):
                    raise BadImage("`pixels` must be a 2-D grayscale array, got 3 or more dimensions")
                count += len(row)
            else:
                count += 1
    else:
        raise BadImage(f"`pixels` must be a 2-D array of numbers, got {type(values).__name__}")
    if count > limits.max_image_pixels:
        raise BadImage(f"`pixels` holds {count:,} values, over the limit of {limits.max_image_pixels:,}")


def _image_bytes(image: object, limits: ReadLimits) -> bytes:
    """Encoded image bytes: as given in process, base64 text over REST (its decoded size, 3 bytes
    per 4 characters, checked against the file limit before decoding)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, str):
        decoded = len(image) // 4 * 3
        if decoded > limits.max_file_bytes + 2:  # padding: up to 2 bytes fewer than 3 per 4 characters
            raise BadImage(
                f"`image` decodes to {decoded / MB:.1f} MB, over the limit of {limits.max_file_bytes / MB:g} MB; "
                f"{env_hint('max_file_bytes')}"
            )
        try:
            return base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise BadImage("`image` is text but not base64 (over REST, image bytes travel base64-encoded)") from None
    raise BadImage(f"`image` must be encoded image bytes (base64 text over REST), got {type(image).__name__}")


def predict_rows(
    predictor: FacePredictor, table: pd.DataFrame, limits: ReadLimits | None = None, params: dict | None = None
) -> pd.DataFrame:
    """One output row per input row: `label`, `confidence`, `uncertain`, the seven probabilities and
    `error` ("" when it worked; else the reason, and the other columns are null).

    `params` (the request's): `raw` (true: the network's own probabilities, not calibrated) and
    `min_confidence` (a top probability under it is `uncertain`); the predictor's settings otherwise."""
    limits = limits or ReadLimits.from_env()
    _check_request(table)
    raw, min_confidence = request_params(params or {}, predictor)
    faces, errors = [], []
    for row in table.to_dict("records"):
        try:
            faces.append(face_of_row(row, limits))
            errors.append("")
        except BadImage as exc:
            faces.append(None)
            errors.append(str(exc))
    good = [i for i, face in enumerate(faces) if face is not None]
    probs = np.full((len(faces), len(EMOTIONS)), np.nan)
    if good:
        probs[good] = predictor.predict_proba(np.stack([faces[i] for i in good]), raw=raw)
    out = pd.DataFrame(probs, columns=list(EMOTIONS))
    confidence = probs.max(axis=1, initial=-np.inf, where=~np.isnan(probs))
    out.insert(0, "label", [EMOTIONS[int(p.argmax())] if not e else None for p, e in zip(probs, errors)])
    out.insert(1, "confidence", np.where(np.isfinite(confidence), confidence, np.nan))
    out.insert(2, "uncertain", [bool(c < min_confidence) if not e else None for c, e in zip(confidence, errors)])
    if len(good) < len(faces):  # null, not NaN: NaN is not JSON, and the server answers in JSON
        out = out.astype(object).where(out.notna(), None)
    out["error"] = errors
    return out


def request_params(params: dict, predictor: FacePredictor) -> tuple[bool, float]:
    """(raw, min_confidence) from a request's params, each checked; the predictor's where absent."""
    unknown = sorted(set(params) - {"raw", "min_confidence"})
    if unknown:
        raise RequestError(f"unknown param(s) {unknown}; the model takes `raw` and `min_confidence`")
    raw = params.get("raw", predictor.raw)
    if not isinstance(raw, (bool, np.bool_)):
        raise RequestError(f"param `raw` must be true or false, got {raw!r}")
    threshold = params.get("min_confidence", predictor.min_confidence)
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
        raise RequestError(f"param `min_confidence` must be a number from 0 to 1, got {threshold!r}")
    return bool(raw), float(threshold)


def _check_request(table: object) -> None:
    if not isinstance(table, pd.DataFrame):
        raise RequestError(f"expected a table of rows with `image` or `pixels`, got {type(table).__name__}")
    columns: Sequence[str] = [str(c) for c in table.columns]
    if not {"image", "pixels"} & set(columns):
        raise RequestError(
            f"the request has no `image` or `pixels` column (it has {columns or 'none the model knows'}); "
            "each row needs `image` (base64 image bytes over REST) or `pixels` (a 2-D array)"
        )
    unknown = sorted(set(columns) - set(INPUT_COLUMNS))
    if unknown:
        raise RequestError(f"unknown column(s) {unknown}; a row has `image`, or `pixels` and `pixel_range`")
    if len(table) > MAX_ROWS:
        raise RequestError(f"{len(table)} rows in one request, over the limit of {MAX_ROWS}; send smaller batches")
