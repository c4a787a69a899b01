"""Readers for the three forms FER2013 comes in.

- the Kaggle image-folder archive (`train/<emotion>/Training_*.jpg`,
  `test/<emotion>/PublicTest_*.jpg`, `test/<emotion>/PrivateTest_*.jpg`),
  read member by member in memory, never extracted;
- the same folder extracted;
- the challenge CSV `fer2013.csv` (`emotion,pixels,Usage`).

All three end in one `FERDataset`. Split comes from the file prefix or the
Usage column; a `train/` or `test/` folder without prefixes is all train or all
test (another data set to evaluate on).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ferkit.data.dataset import FERDataset, IngestReport
from ferkit.data.errors import DataError, DataNotFoundError
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE, IMAGE_SUFFIXES, LABEL_OF, SPLIT_OF_USAGE, SPLITS

DATA_ENV_VAR = "FER2013_PATH"
SPLIT_DIRS = ("train", "test")
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE
# Above this share of undecodable files the data is more likely broken than dirty.
MAX_BAD_FRACTION = 0.01

OnBadImage = Literal["skip", "fail"]

HOW_TO_GET = (
    "Download FER2013 from Kaggle (data set 'msambare/fer2013', the image-folder zip) "
    "or the original challenge CSV 'fer2013.csv', then set the environment variable "
    f"{DATA_ENV_VAR} or the ingest step's `data_path` to the file or folder."
)


def resolve_data_path(data_path: str | os.PathLike | None = None) -> Path:
    """The data path from the argument, else from $FER2013_PATH; it must exist."""
    raw = data_path if data_path not in (None, "") else os.environ.get(DATA_ENV_VAR, "")
    if not raw:
        raise DataNotFoundError(f"No FER2013 data path given and ${DATA_ENV_VAR} is not set. {HOW_TO_GET}")
    path = Path(raw).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"FER2013 data not found at '{path}'. {HOW_TO_GET}")
    return path


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content hash of a file, or of every file under a folder (names and bytes)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path).as_posix()).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def read_fer2013(
    data_path: str | os.PathLike | None = None,
    on_bad_image: OnBadImage = "skip",
    limit_per_class: int | None = None,
    progress: bool = True,
) -> FERDataset:
    """Read any supported form of FER2013 into one `FERDataset`.

    `limit_per_class` keeps the first n images of each (split, class) pair, for
    quick configs; `on_bad_image` says whether an undecodable file is skipped
    (and listed in the report) or stops the read.
    """
    if on_bad_image not in ("skip", "fail"):
        raise ValueError(f"on_bad_image must be 'skip' or 'fail', got {on_bad_image!r}")
    path = resolve_data_path(data_path)
    if path.is_dir():
        data = _read_image_tree(_FolderSource(path), on_bad_image, limit_per_class, progress)
        fmt = "folder"
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            data = _read_image_tree(_ZipSource(path, zf), on_bad_image, limit_per_class, progress)
        fmt = "zip"
    elif path.suffix.lower() == ".csv":
        data = _read_csv(path, limit_per_class)
        fmt = "csv"
    else:
        raise DataError(f"'{path}' is neither a folder, a zip archive nor a .csv file. {HOW_TO_GET}")
    data.report.source = str(path)
    data.report.source_format = fmt
    data.report.source_sha256 = file_sha256(path) if path.is_file() else ""
    data.report.missing_classes = _missing_classes(data)
    return data


# --- image trees (zip or folder) -------------------------------------------------------


class _FolderSource:
    """Files under an extracted folder, as POSIX paths relative to it."""

    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)

    def names(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class _ZipSource:
    """Members of a zip archive, read in memory; unsafe member names are refused."""

    def __init__(self, path: Path, zf: zipfile.ZipFile):
        self.zf = zf
        self.label = str(path)

    def names(self) -> list[str]:
        names = []
        for info in self.zf.infolist():
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
                raise DataError(f"{self.label}: refusing zip member '{name}': absolute paths and '..' are not allowed")
            if not info.is_dir():
                names.append(name)
        return sorted(names)

    def read(self, name: str) -> bytes:
        return self.zf.read(name)


def _find_root(names: list[str], label: str) -> str:
    """The prefix under which `train/` and/or `test/` live ('' or one wrapping folder)."""
    roots = set()
    for name in names:
        parts = name.split("/")
        for depth in range(min(len(parts) - 1, 2)):
            if parts[depth] in SPLIT_DIRS:
                roots.add("/".join(parts[:depth]))
                break
    if not roots:
        raise DataError(
            f"{label}: no 'train/' or 'test/' folder found; expected the Kaggle layout "
            f"train/<emotion>/*.jpg and test/<emotion>/*.jpg. {HOW_TO_GET}"
        )
    if len(roots) > 1:
        raise DataError(f"{label}: several data roots found ({sorted(roots)}); point at one of them")
    return roots.pop()


def _split_of(split_dir: str, filename: str) -> int:
    """Split from the FER2013 file prefix, else from the folder (train/ or test/)."""
    prefix = filename.split("_", 1)[0]
    if prefix in SPLIT_OF_USAGE:
        return SPLITS.index(SPLIT_OF_USAGE[prefix])
    return SPLITS.index("train" if split_dir == "train" else "test")


def _decode(raw: bytes) -> tuple[np.ndarray, bool, tuple[int, int], str]:
    """Decode to a 48x48 uint8 array; also whether it had to be converted, its size and mode."""
    with Image.open(io.BytesIO(raw)) as img:
        img.load()
        size, mode = img.size, img.mode
        converted = False
        if mode != "L":
            img = img.convert("L")
            converted = True
        if img.size != (IMAGE_SIZE, IMAGE_SIZE):
            img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
            converted = True
        return np.asarray(img, dtype=np.uint8), converted, size, mode


def _iter_images(source, root: str) -> Iterator[tuple[str, str, str]]:
    """(member name, split dir, emotion dir) for each image file; checks folder names."""
    names = source.names()
    seen_split_dirs: dict[str, int] = {}
    for name in names:
        rel = name[len(root) + 1 :] if root else name
        parts = rel.split("/")
        if parts[0] not in SPLIT_DIRS:
            continue  # README files and the like beside the split folders
        if len(parts) == 2:
            if Path(parts[1]).suffix.lower() in IMAGE_SUFFIXES:
                raise DataError(
                    f"{source.label}: image '{name}' is not inside an emotion folder; "
                    f"expected {parts[0]}/<emotion>/{parts[1]}"
                )
            continue
        if len(parts) != 3:
            raise DataError(f"{source.label}: unexpected nesting at '{name}'; expected <split>/<emotion>/<file>")
        split_dir, emotion, filename = parts
        seen_split_dirs.setdefault(split_dir, 0)
        if emotion.lower() not in LABEL_OF:
            folder = f"{root}/{split_dir}/{emotion}" if root else f"{split_dir}/{emotion}"
            raise DataError(
                f"{source.label}: unknown class folder '{folder}'; class folders must be one of {list(EMOTIONS)}"
            )
        if filename.startswith(".") or Path(filename).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        seen_split_dirs[split_dir] += 1
        yield name, split_dir, emotion.lower()
    for split_dir, count in seen_split_dirs.items():
        if count == 0:
            folder = f"{root}/{split_dir}" if root else split_dir
            raise DataError(f"{source.label}: split folder '{folder}/' holds no images")


def _read_image_tree(source, on_bad_image: OnBadImage, limit_per_class: int | None, progress: bool) -> FERDataset:
    names = source.names()
    root = _find_root(names, source.label)
    entries = list(_iter_images(source, root))
    if not entries:
        raise DataError(f"{source.label}: no image files found under train/ or test/")

    images = np.empty((len(entries), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    labels, splits, ids = [], [], []
    report = IngestReport()
    kept_per_group: dict[tuple[int, int], int] = {}
    n = 0
    for name, split_dir, emotion in tqdm(entries, desc="ingest", unit="img", disable=not progress, mininterval=1.0):
        split = _split_of(split_dir, PurePosixPath(name).name)
        label = LABEL_OF[emotion]
        if limit_per_class is not None:
            if kept_per_group.get((split, label), 0) >= limit_per_class:
                continue
        try:
            pixels, converted, size, mode = _decode(source.read(name))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            if on_bad_image == "fail":
                raise DataError(f"{source.label}: cannot decode image '{name}': {exc}") from exc
            report.bad_files.append(name)
            continue
        kept_per_group[(split, label)] = kept_per_group.get((split, label), 0) + 1
        images[n] = pixels
        if converted:
            report.converted += 1
            report.original_formats[name] = [size[0], size[1], mode]
        labels.append(label)
        splits.append(split)
        ids.append(name)
        n += 1

    attempted = n + len(report.bad_files)
    if report.bad_files and len(report.bad_files) > MAX_BAD_FRACTION * attempted:
        shown = ", ".join(report.bad_files[:5])
        raise DataError(
            f"{source.label}: {len(report.bad_files)} of {attempted} images could not be decoded "
            f"(more than {MAX_BAD_FRACTION:.0%}); first: {shown}"
        )
    return FERDataset(images=images[:n], labels=labels, splits=splits, source_ids=ids, report=report)


# --- the challenge CSV -------------------------------------------------------------------


def _read_csv(path: Path, limit_per_class: int | None) -> FERDataset:
    try:
        frame = pd.read_csv(path, dtype={"pixels": str})
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV: {exc}") from exc
    frame.columns = [c.strip() for c in frame.columns]
    for column in ("emotion", "pixels"):
        if column not in frame.columns:
            raise DataError(f"{path}: missing column '{column}'; expected columns emotion,pixels,Usage")
    if frame.empty:
        raise DataError(f"{path}: the CSV has a header but no rows")

    n = len(frame)
    images = np.empty((n, PIXELS_PER_IMAGE), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    splits = np.empty(n, dtype=np.uint8)
    usages = frame["Usage"].tolist() if "Usage" in frame.columns else [None] * n
    rows = zip(frame["emotion"].tolist(), frame["pixels"].tolist(), usages)
    for i, (emotion, pixels, usage) in enumerate(rows):
        labels[i], images[i], splits[i] = _csv_row(path, i + 2, emotion, pixels, usage)  # 1-based, after the header
    ids = np.array([f"{path.name}:row{i + 2}" for i in range(n)])
    keep = _first_per_class(splits, labels, limit_per_class)
    return FERDataset(
        images=images[keep].reshape(-1, IMAGE_SIZE, IMAGE_SIZE),
        labels=labels[keep],
        splits=splits[keep],
        source_ids=ids[keep],
        report=IngestReport(),
    )


def _csv_row(path: Path, line: int, emotion, pixels, usage) -> tuple[int, np.ndarray, int]:
    """(label, 2,304 pixel values, split code) of one CSV row; a DataError names the row and field."""
    try:
        label = int(emotion)
    except (TypeError, ValueError):
        raise DataError(f"{path}: row {line}: emotion {emotion!r} is not an integer 0-6") from None
    if not 0 <= label < len(EMOTIONS):
        raise DataError(f"{path}: row {line}: emotion {label} is outside 0-6 ({', '.join(EMOTIONS)})")
    values = np.array(str(pixels).split(), dtype=np.int64) if isinstance(pixels, str) else np.array([])
    if values.size != PIXELS_PER_IMAGE:
        raise DataError(f"{path}: row {line}: 'pixels' has {values.size} values, expected {PIXELS_PER_IMAGE} (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{path}: row {line}: pixel values must lie in 0-255")
    if usage is None:
        return label, values, SPLITS.index("test")
    usage = str(usage).strip()
    if usage not in SPLIT_OF_USAGE:
        raise DataError(f"{path}: row {line}: Usage {usage!r} is not one of {list(SPLIT_OF_USAGE)}")
    return label, values, SPLITS.index(SPLIT_OF_USAGE[usage])


def _first_per_class(splits: np.ndarray, labels: np.ndarray, limit: int | None) -> np.ndarray:
    """True for the first `limit` rows of each split and class (every row without a limit)."""
    keep = np.ones(len(labels), dtype=bool)
    if limit is not None:
        keep[:] = False
        for split in np.unique(splits):
            for label in np.unique(labels):
                keep[np.flatnonzero((splits == split) & (labels == label))[:limit]] = True
    return keep


def _missing_classes(data: FERDataset) -> dict[str, list[str]]:
    """Classes absent from each split that has images (allowed for evaluation; reported)."""
    missing = {}
    for split, count in data.split_counts().items():
        if count == 0:
            continue
        absent = [name for name, c in data.class_counts(split).items() if c == 0]
        if absent:
            missing[split] = absent
    return missing
