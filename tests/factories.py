"""Small FER2013-shaped data sets in each on-disk form, written by the tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

# The layout users download: folder names as Kaggle spells them (not canonical order).
FOLDER_EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
USAGE_PREFIX = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def face(seed: int, size: int = 48) -> np.ndarray:
    """A deterministic 48x48 uint8 'face': noise over a gradient, distinct per seed."""
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 200, size, dtype=np.float32)[None, :].repeat(size, 0)
    return np.clip(base + rng.normal(0, 25, (size, size)), 0, 255).astype(np.uint8)


def jpeg_bytes(pixels: np.ndarray, mode: str = "L", fmt: str = "JPEG") -> bytes:
    img = Image.fromarray(pixels)
    if mode != "L":
        img = img.convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def image_tree(
    per_class: dict[str, int] | int = 2,
    splits=("train", "val", "test"),
    prefixed: bool = True,
    emotions=FOLDER_EMOTIONS,
) -> dict[str, bytes]:
    """{member name: bytes} in the Kaggle layout; val and test both live under test/."""
    files: dict[str, bytes] = {}
    seed = 0
    for split in splits:
        top = "train" if split == "train" else "test"
        for emotion in emotions:
            n = per_class if isinstance(per_class, int) else per_class.get(emotion, 0)
            for _ in range(n):
                seed += 1
                name = f"{USAGE_PREFIX[split]}_{seed}.jpg" if prefixed else f"img_{seed}.jpg"
                files[f"{top}/{emotion}/{name}"] = jpeg_bytes(face(seed))
    return files


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def write_csv(path: Path, rows: list[tuple[object, str, str]]) -> Path:
    lines = ["emotion,pixels,Usage"] + [f"{e},{p},{u}" for e, p, u in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_rows(per_class: int = 2) -> list[tuple[int, str, str]]:
    rows, seed = [], 1000
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for label in range(7):
            for _ in range(per_class):
                seed += 1
                rows.append((label, " ".join(map(str, face(seed).ravel())), usage))
    return rows


# A hybrid model small enough for unit tests: the fer_resnet trunk at 48 px, D = 32.
TINY_HYBRID = dict(
    backbone="fer_resnet",
    input_size=48,
    dim=32,
    heads=8,
    hidden=16,
    backbone_options={"stem": 8, "widths": [16, 16, 32], "blocks": [1, 1, 1]},
)
