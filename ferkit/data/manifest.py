"""One row per image, for validation: where it came from and what its pixels look like."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE, SPLITS

MANIFEST_COLUMNS = (
    "id",
    "split",
    "label",
    "width",
    "height",
    "mode",
    "converted",
    "pixel_mean",
    "pixel_std",
    "pixel_hash",
    "synthetic",
)


def build_manifest(data: FERDataset) -> pd.DataFrame:
    """Per-image manifest; `pixel_hash` is equal exactly when two images are pixel-identical.

    Width, height and mode are the image's as it was read; every stored image is
    48x48 grayscale, and `converted` says which ones ingestion had to convert.
    """
    original = data.report.original_formats
    fmt = [original.get(i, (IMAGE_SIZE, IMAGE_SIZE, "L")) for i in data.source_ids.tolist()]
    flat = data.images.reshape(len(data), IMAGE_SIZE * IMAGE_SIZE).astype(np.float32)  # (N, 2304)
    hashes = [hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest() for img in data.images]
    return pd.DataFrame(
        {
            "id": data.source_ids.astype(str),
            "split": pd.Categorical.from_codes(data.splits.astype(np.int64), categories=list(SPLITS)),
            "label": pd.Categorical.from_codes(data.labels, categories=list(EMOTIONS)),
            "width": np.array([f[0] for f in fmt], dtype=np.int32),
            "height": np.array([f[1] for f in fmt], dtype=np.int32),
            "mode": [str(f[2]) for f in fmt],
            "converted": [i in original for i in data.source_ids.tolist()],
            "pixel_mean": flat.mean(axis=1),
            "pixel_std": flat.std(axis=1),
            "pixel_hash": hashes,
            "synthetic": data.synthetic,
        },
        columns=list(MANIFEST_COLUMNS),
    )
