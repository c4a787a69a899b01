"""Small FER2013-shaped data sets in each on-disk form, written by the tests."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
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


# --- hostile input: files that are cheap to write and expensive to read naively ---------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def blank_png(width: int, height: int, header_only: bool = False) -> bytes:
    """A black 8-bit grayscale PNG of any size, compressed row by row (a 13,000 px square is 164 KB);
    `header_only` leaves the pixel data out, for checks that must refuse before decoding."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header)]
    if not header_only:
        packer, row, parts = zlib.compressobj(9), b"\x00" * (width + 1), []
        for _ in range(height):
            parts.append(packer.compress(row))
        parts.append(packer.flush())
        chunks.append(_png_chunk(b"IDAT", b"".join(parts)))
    chunks.append(_png_chunk(b"IEND", b""))
    return b"".join(chunks)


def write_zip_with_large_member(path: Path, files: dict[str, bytes], name: str, size: int) -> Path:
    """`files` plus one member of `size` zero bytes, written in pieces (1 GiB deflates to about 1 MB)."""
    write_zip(path, files)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w", force_zip64=True) as member:
            block = b"\x00" * (1 << 20)
            for start in range(0, size, len(block)):
                member.write(block[: min(len(block), size - start)])
    return path


def understate_member_size(path: Path, name: str, declared: int) -> None:
    """Make the zip's headers claim `name` uncompresses to `declared` bytes (a lying header)."""
    raw = bytearray(path.read_bytes())
    encoded = name.encode()
    # (signature, offset of the uncompressed size, of the name's length, of the name) in each header
    for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        at = raw.find(signature)
        while at != -1:
            length = struct.unpack_from("<H", raw, at + length_at)[0]
            if raw[at + name_at : at + name_at + length] == encoded:
                struct.pack_into("<I", raw, at + size_at, declared)
            at = raw.find(signature, at + 4)
    path.write_bytes(bytes(raw))
