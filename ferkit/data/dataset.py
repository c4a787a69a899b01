"""The in-memory FER data set: every image decoded once into one uint8 array."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.data.labels import EMOTIONS, IMAGE_SIZE, SPLITS


@dataclass
class IngestReport:
    """What ingestion saw besides the images it kept."""

    source: str = ""  # path the data came from
    source_sha256: str = ""  # content hash of the archive, CSV or folder (its files' names and bytes)
    source_format: str = ""  # "zip" | "folder" | "csv"
    converted: int = 0  # images that were not 48x48 grayscale and were converted
    original_formats: dict[str, list] = field(default_factory=dict)  # id -> [width, height, mode], converted only
    bad_files: list[str] = field(default_factory=list)  # unreadable files that were skipped
    bad_reasons: dict[str, str] = field(default_factory=dict)  # bad file -> why it could not be read
    conversions: dict[str, int] = field(default_factory=dict)  # "rotated", "alpha", "16-bit", ... -> images
    followed_links: list[str] = field(default_factory=list)  # symbolic links inside the data folder, read
    refused_links: dict[str, str] = field(default_factory=dict)  # links not followed -> why
    missing_classes: dict[str, list[str]] = field(default_factory=dict)  # split -> absent classes
    ignored: dict[str, str] = field(default_factory=dict)  # files outside the layout, left out -> why

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "source_sha256": self.source_sha256,
            "source_format": self.source_format,
            "converted": self.converted,
            "original_formats": dict(self.original_formats),
            "bad_files": list(self.bad_files),
            "bad_reasons": dict(self.bad_reasons),
            "conversions": dict(self.conversions),
            "followed_links": list(self.followed_links),
            "refused_links": dict(self.refused_links),
            "missing_classes": {k: list(v) for k, v in self.missing_classes.items()},
            "ignored": dict(self.ignored),
        }

    @classmethod
    def from_dict(cls, d: dict) -> IngestReport:
        return cls(**d)


@dataclass
class FERDataset:
    """Faces, labels and splits as parallel arrays.

    `images` is (N, 48, 48) uint8; `labels` indexes `EMOTIONS`; `splits` indexes
    `SPLITS`; `source_ids` names the file or CSV row each image came from;
    `synthetic` marks generated images, which only ever belong to train.
    """

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, index into EMOTIONS
    splits: np.ndarray  # (N,) uint8, index into SPLITS
    source_ids: np.ndarray  # (N,) str
    synthetic: np.ndarray | None = None  # (N,) bool; None means all real
    report: IngestReport = field(default_factory=IngestReport)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.synthetic is None:
            self.synthetic = np.zeros(n, dtype=bool)
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.splits = np.asarray(self.splits, dtype=np.uint8)
        self.source_ids = np.asarray(self.source_ids, dtype=str)
        self.synthetic = np.asarray(self.synthetic, dtype=bool)
        if self.images.ndim != 3 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must be (N, 48, 48), got {self.images.shape}")
        for name in ("labels", "splits", "source_ids", "synthetic"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} images")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(EMOTIONS)):
            raise ValueError("labels must index EMOTIONS (0..6)")
        if n and self.splits.max() >= len(SPLITS):
            raise ValueError("splits must index SPLITS (0..2)")
        if np.any(self.synthetic & (self.splits != SPLITS.index("train"))):
            raise ValueError("synthetic images may only belong to the train split")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def fingerprint(self) -> str:
        """sha256 over pixels, labels and splits: equal content, equal fingerprint."""
        h = hashlib.sha256()
        for arr in (self.images, self.labels, self.splits, self.synthetic):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def split_mask(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return self.splits == SPLITS.index(split)

    def subset(self, mask_or_index: np.ndarray) -> FERDataset:
        """A new data set with the selected rows (boolean mask or integer index)."""
        idx = np.asarray(mask_or_index)
        return FERDataset(
            images=self.images[idx],
            labels=self.labels[idx],
            splits=self.splits[idx],
            source_ids=self.source_ids[idx],
            synthetic=self.synthetic[idx],
            report=self.report,
        )

    def split(self, split: str) -> FERDataset:
        return self.subset(self.split_mask(split))

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        """Images per emotion, in canonical order, optionally for one split."""
        labels = self.labels if split is None else self.labels[self.split_mask(split)]
        counts = np.bincount(labels, minlength=len(EMOTIONS))
        return {name: int(c) for name, c in zip(EMOTIONS, counts)}

    def split_counts(self) -> dict[str, int]:
        counts = np.bincount(self.splits, minlength=len(SPLITS))
        return {name: int(c) for name, c in zip(SPLITS, counts)}

    def summary(self) -> dict:
        """Counts per split and class, for logs and reports."""
        return {
            "images": len(self),
            "fingerprint": self.fingerprint,
            "splits": self.split_counts(),
            "classes": {s: self.class_counts(s) for s in SPLITS},
            "synthetic": int(self.synthetic.sum()),
            **self.report.to_dict(),
        }

    # Storage: one .npz of raw arrays (pixels compress poorly and zlib would
    # cost more time than the bytes it saves) plus a small JSON sidecar.
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "arrays.npz", "wb") as f:
            np.savez(
                f,
                images=self.images,
                labels=self.labels,
                splits=self.splits,
                source_ids=self.source_ids,
                synthetic=self.synthetic,
            )
        meta = {"report": self.report.to_dict(), "emotions": list(EMOTIONS), "splits": list(SPLITS)}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> FERDataset:
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if tuple(meta["emotions"]) != EMOTIONS:
            raise ValueError(f"{directory}: stored label order {meta['emotions']} != {EMOTIONS}")
        with np.load(directory / "arrays.npz", allow_pickle=False) as z:
            return cls(
                images=z["images"],
                labels=z["labels"],
                splits=z["splits"],
                source_ids=z["source_ids"],
                synthetic=z["synthetic"],
                report=IngestReport.from_dict(meta["report"]),
            )
