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
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ferkit.data.csv_reader import read_csv
from ferkit.data.dataset import FERDataset, IngestReport
from ferkit.data.errors import DataError, DataNotFoundError
from ferkit.data.images import BadImage, GrayImage, ReadLimits, read_gray
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE, IMAGE_SUFFIXES, LABEL_OF, SPLIT_OF_USAGE, SPLITS
from ferkit.data.sources import FolderSource, ZipSource
from ferkit.runtime import progress_disabled
from ferkit.stopping import raise_if_stop_requested

DATA_ENV_VAR = "FER2013_PATH"
SPLIT_DIRS = ("train", "test")
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
    if not path.is_file() and not path.is_dir():  # a pipe would block the first read for good
        raise DataError(f"'{path}' is neither a file nor a folder (a pipe, socket or device): FER2013 data is a "
                        ".zip, a .csv or a folder")  # fmt: skip
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
    progress: bool | None = None,
    limits: ReadLimits | None = None,
) -> FERDataset:
    """Read any supported form of FER2013 into one `FERDataset`.

    `limit_per_class` keeps the first n images of each (split, class) pair, for
    quick configs; `progress` shows a bar (None: unless $FERKIT_NO_PROGRESS is "1"); `on_bad_image` says whether a file that cannot be read as an image
    within `limits` (default: `ReadLimits.from_env()`), or a symbolic link that leaves the
    data folder, is skipped (and listed in the report with the reason) or stops the read.
    """
    if on_bad_image not in ("skip", "fail"):
        raise ValueError(f"on_bad_image must be 'skip' or 'fail', got {on_bad_image!r}")
    limits = limits or ReadLimits.from_env()
    progress = not progress_disabled() if progress is None else progress
    path = resolve_data_path(data_path)
    if path.is_dir():
        data = _read_image_tree(FolderSource(path, limits), on_bad_image, limit_per_class, progress, limits)
        fmt = "folder"
    elif zipfile.is_zipfile(path):
        source = ZipSource(path, limits)
        try:
            data = _read_image_tree(source, on_bad_image, limit_per_class, progress, limits)
        finally:
            source.close()
        fmt = "zip"
    elif path.suffix.lower() == ".csv":
        data = read_csv(path, limit_per_class, limits, progress)
        fmt = "csv"
    else:
        raise DataError(f"'{path}' is neither a folder, a zip archive nor a .csv file. {HOW_TO_GET}")
    data.report.source = str(path)
    data.report.source_format = fmt
    data.report.source_sha256 = file_sha256(path)  # a folder too: what a caller hashed before must match
    data.report.missing_classes = _missing_classes(data)
    return data


# --- image trees (zip or folder) -------------------------------------------------------


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


def _decode(raw: bytes, limits: ReadLimits) -> tuple[np.ndarray, GrayImage]:
    """Decode to a 48x48 uint8 array (and what the file was) within `limits`; `BadImage` says why not."""
    gray = read_gray(raw, limits)
    pixels = gray.pixels
    if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
        resized = Image.fromarray(pixels).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
        pixels = np.asarray(resized, dtype=np.uint8)
    return pixels, gray


def _iter_images(
    source: FolderSource | ZipSource, root: str, ignored: dict[str, str] | None = None
) -> Iterator[tuple[str, str, str]]:
    """(member name, split dir, emotion dir) for each image file; checks folder names. Files left
    out (beside the split folders, or not images) go into `ignored` with why; hidden ones do not."""
    names = source.names()
    seen_split_dirs: dict[str, int] = {}
    ignored = {} if ignored is None else ignored
    for name in names:
        rel = name[len(root) + 1 :] if root else name
        parts = rel.split("/")
        if any(part.startswith(".") for part in parts):
            continue  # .DS_Store, .gitkeep and the like
        if parts[0] not in SPLIT_DIRS:
            ignored[name] = f"outside {' and '.join(f'{d}/' for d in sorted(SPLIT_DIRS))}"
            continue  # README files and the like beside the split folders
        if len(parts) == 2:
            if Path(parts[1]).suffix.lower() in IMAGE_SUFFIXES:
                raise DataError(
                    f"{source.label}: image '{name}' is not inside an emotion folder; "
                    f"expected {parts[0]}/<emotion>/{parts[1]}"
                )
            ignored[name] = "not inside an emotion folder"
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
        if Path(filename).suffix.lower() not in IMAGE_SUFFIXES:
            ignored[name] = f"not an image suffix ({', '.join(sorted(IMAGE_SUFFIXES))})"
            continue
        seen_split_dirs[split_dir] += 1
        yield name, split_dir, emotion.lower()
    for split_dir, count in seen_split_dirs.items():
        if count == 0:
            folder = f"{root}/{split_dir}" if root else split_dir
            raise DataError(f"{source.label}: split folder '{folder}/' holds no images")


def _read_image_tree(
    source: FolderSource | ZipSource,
    on_bad_image: OnBadImage,
    limit_per_class: int | None,
    progress: bool,
    limits: ReadLimits,
) -> FERDataset:
    names = source.names()
    root = _find_root(names, source.label)
    ignored: dict[str, str] = {}
    entries = list(_iter_images(source, root, ignored))
    report = IngestReport(followed_links=list(source.followed_links), refused_links=dict(source.refused_links),
                          ignored=ignored)  # fmt: skip
    if source.refused_links and on_bad_image == "fail":
        link, why = next(iter(source.refused_links.items()))
        raise DataError(f"{source.label}: refusing '{link}': {why}")
    if not entries:
        raise DataError(f"{source.label}: no image files found under train/ or test/")

    images = np.empty((len(entries), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    labels, splits, ids = [], [], []
    kept_per_group: dict[tuple[int, int], int] = {}
    n = 0
    for name, split_dir, emotion in tqdm(entries, desc="ingest", unit="img", disable=not progress, mininterval=1.0):
        raise_if_stop_requested()
        split = _split_of(split_dir, PurePosixPath(name).name)
        label = LABEL_OF[emotion]
        if limit_per_class is not None:
            if kept_per_group.get((split, label), 0) >= limit_per_class:
                continue
        try:
            pixels, gray = _decode(source.read(name), limits)
        except BadImage as exc:
            if on_bad_image == "fail":
                raise DataError(f"{source.label}: cannot read image '{name}': {exc}") from None
            report.bad_files.append(name)
            report.bad_reasons[name] = str(exc)
            continue
        kept_per_group[(split, label)] = kept_per_group.get((split, label), 0) + 1
        images[n] = pixels
        if gray.mode != "L" or gray.size != (IMAGE_SIZE, IMAGE_SIZE) or gray.notes:
            report.converted += 1
            report.original_formats[name] = [gray.size[0], gray.size[1], gray.mode]
            for note in gray.notes:
                report.conversions[note] = report.conversions.get(note, 0) + 1
        labels.append(label)
        splits.append(split)
        ids.append(name)
        n += 1

    attempted = n + len(report.bad_files)
    if report.bad_files and len(report.bad_files) > MAX_BAD_FRACTION * attempted:
        shown = "; ".join(f"{name} ({report.bad_reasons[name]})" for name in report.bad_files[:5])
        raise DataError(
            f"{source.label}: {len(report.bad_files)} of {attempted} images could not be read "
            f"(more than {MAX_BAD_FRACTION:.0%}); first: {shown}"
        )
    return FERDataset(images=images[:n], labels=labels, splits=splits, source_ids=ids, report=report)


def check_unchanged(data: FERDataset, source_sha256: str) -> None:
    """A `DataError` when what was read (`data.report.source_sha256`) is not what was hashed before
    reading it (`source_sha256`, the pipeline's fingerprint step): the file or folder changed
    meanwhile, and the step's cache key would name content it does not hold."""
    if data.report.source_sha256 and data.report.source_sha256 != source_sha256:
        raise DataError(
            f"{data.report.source} changed while the pipeline was reading it "
            f"(sha256 {source_sha256[:12]}... before, {data.report.source_sha256[:12]}... now); run again"
        )


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
