"""The challenge CSV `fer2013.csv` (`emotion,pixels,Usage`), read row by row in bounded memory.

Every bad row is found in one pass: the error lists each (row, column, what is wrong) up to
`MAX_LISTED_ROWS` and says how many there were, so a user fixes them all in one go.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm.auto import tqdm

from ferkit.data.dataset import FERDataset, IngestReport
from ferkit.data.errors import DataError
from ferkit.data.images import ReadLimits, env_hint
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE, SPLIT_OF_USAGE, SPLITS
from ferkit.stopping import raise_if_stop_requested

PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE
MAX_LISTED_ROWS = 20  # bad rows named in one error; the count covers them all
# 2,304 values of at most three digits and a separator, plus the label and Usage, fit in 10,000.
MAX_LINE_CHARS = 64 * 1024


class _RowError(Exception):
    def __init__(self, column: str, problem: str):
        super().__init__(f"column '{column}': {problem}")


def read_csv(path: Path, limit_per_class: int | None, limits: ReadLimits, progress: bool = True) -> FERDataset:
    """Read the CSV into a `FERDataset`; a `DataError` lists every bad row (up to `MAX_LISTED_ROWS`)."""
    csv.field_size_limit(MAX_LINE_CHARS)
    with open(path, "rb") as file:
        lines = _BoundedLines(file, path)
        reader = csv.reader(lines)
        try:
            header = [c.strip() for c in next(reader, [])]
            lines.record_done()
            columns = _columns(path, header)
            rows = _read_rows(path, reader, lines, columns, len(header), limit_per_class, limits, progress)
        except csv.Error as exc:
            raise DataError(f"{path}: row {reader.line_num}: not readable as CSV: {exc}") from None
    images, labels, splits, ids = rows
    if not labels:
        raise DataError(f"{path}: the CSV has a header but no rows")
    return FERDataset(
        images=images.array().reshape(-1, IMAGE_SIZE, IMAGE_SIZE),
        labels=np.array(labels, dtype=np.int64),
        splits=np.array(splits, dtype=np.uint8),
        source_ids=np.array(ids),
        report=IngestReport(),
    )


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    for column in ("emotion", "pixels"):
        if column not in header:
            raise DataError(f"{path}: missing column '{column}'; expected columns emotion,pixels,Usage")
    return {name: header.index(name) for name in ("emotion", "pixels", "Usage") if name in header}


class _Faces:
    """Rows of 2,304 pixels in one growing uint8 buffer (doubling), never a list of small arrays."""

    def __init__(self) -> None:
        self.buffer, self.count = np.empty((1024, PIXELS_PER_IMAGE), dtype=np.uint8), 0

    def append(self, pixels: np.ndarray) -> None:
        if self.count == len(self.buffer):
            grown = np.empty((2 * len(self.buffer), PIXELS_PER_IMAGE), dtype=np.uint8)
            grown[: self.count] = self.buffer
            self.buffer = grown
        self.buffer[self.count] = pixels
        self.count += 1

    def array(self) -> np.ndarray:
        return self.buffer[: self.count]


def _read_rows(path, reader, lines, columns, width, limit_per_class, limits, progress):
    images, labels, splits, ids = _Faces(), [], [], []
    kept: dict[tuple[int, int], int] = {}
    problems: list[str] = []
    bad = rows = 0
    for row in tqdm(reader, desc="ingest", unit="row", disable=not progress, mininterval=1.0):
        raise_if_stop_requested()
        lines.record_done()
        if not row:
            continue  # blank line
        rows += 1
        if rows > limits.max_files:
            raise DataError(f"{path}: more than {limits.max_files:,} rows; {env_hint('max_files')}")
        try:
            if len(row) != width:
                raise _RowError("*", f"has {len(row)} fields, expected {width} like the header")
            label, pixels, split = _parse_row(row, columns)
        except _RowError as exc:
            bad += 1
            if len(problems) < MAX_LISTED_ROWS:
                problems.append(f"row {reader.line_num}, {exc}")
            continue
        if bad or (limit_per_class is not None and kept.get((split, label), 0) >= limit_per_class):
            continue  # after the first bad row only the checking goes on
        kept[(split, label)] = kept.get((split, label), 0) + 1
        images.append(pixels)
        labels.append(label)
        splits.append(split)
        ids.append(f"{path.name}:row{reader.line_num}")
    if bad:
        listed = "every one listed" if bad <= MAX_LISTED_ROWS else f"the first {MAX_LISTED_ROWS} listed"
        raise DataError(f"{path}: {bad} bad row(s) ({listed}):\n  " + "\n  ".join(problems))
    return images, labels, splits, ids


def _parse_row(row: list[str], columns: dict[str, int]) -> tuple[int, np.ndarray, int]:
    """(label, 2,304 uint8 pixels, split code) of one row; a `_RowError` names the column at fault."""
    emotion = row[columns["emotion"]].strip()
    try:
        label = int(emotion)
    except ValueError:
        raise _RowError("emotion", f"{emotion!r} is not an integer 0-6") from None
    if not 0 <= label < len(EMOTIONS):
        raise _RowError("emotion", f"{label} is outside 0-6 ({', '.join(EMOTIONS)})")
    tokens = row[columns["pixels"]].split()
    if len(tokens) != PIXELS_PER_IMAGE:
        raise _RowError("pixels", f"has {len(tokens)} values, expected {PIXELS_PER_IMAGE} (48x48)")
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        first = next((t for t in tokens if not (t.lstrip("-").isascii() and t.lstrip("-").isdigit())), tokens[0])
        raise _RowError("pixels", f"value {first[:20]!r} is not an integer 0-255") from None
    if values.min() < 0 or values.max() > 255:
        raise _RowError("pixels", f"values must lie in 0-255, found {values.min()}..{values.max()}")
    if "Usage" not in columns:
        return label, values.astype(np.uint8), SPLITS.index("test")
    usage = row[columns["Usage"]].strip()
    if usage not in SPLIT_OF_USAGE:
        raise _RowError("Usage", f"{usage!r} is not one of {list(SPLIT_OF_USAGE)}")
    return label, values.astype(np.uint8), SPLITS.index(SPLIT_OF_USAGE[usage])


class _BoundedLines:
    """The file's lines as text for `csv.reader`, refusing one longer than `MAX_LINE_CHARS` before it
    is held in memory, and a record (a row, whose quoted fields may hold line breaks) that runs over
    more than `MAX_LINE_CHARS` in all: the reader keeps a record's fields until it ends, so an
    unclosed quote would otherwise gather the rest of the file. The reader pulls only the lines of
    the record it is reading; `record_done` marks where one ended."""

    def __init__(self, file: BinaryIO, path: Path):
        self.file, self.path = file, path
        self.number = self.start = 0  # the last line read, and the line the current record began on
        self.record_chars = 0

    def record_done(self) -> None:
        self.record_chars = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.file.readline(MAX_LINE_CHARS + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        if len(raw) > MAX_LINE_CHARS:
            raise DataError(f"{self.path}: line {self.number} is longer than {MAX_LINE_CHARS:,} characters; "
                            "not a FER2013 row")  # fmt: skip
        if self.record_chars == 0:
            self.start = self.number
        self.record_chars += len(raw)
        if self.record_chars > MAX_LINE_CHARS:
            raise DataError(
                f"{self.path}: the row that begins on line {self.start} runs on to line {self.number}, over "
                f"{MAX_LINE_CHARS:,} characters (a quote never closed?); not a FER2013 row"
            )
        try:
            return raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{self.path}: line {self.number}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
