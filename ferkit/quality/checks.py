"""What the quality gate looks at: per-image flags and per-class / per-split tables.

FER2013 is dirty: pixel-identical images recur, some in both train and the
evaluation splits (so test scores leak), some with different labels, and a few
images are blank. Each defect becomes a boolean column or a table row here, so
that great-expectations can validate plain columns and name the files at fault.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ferkit.data.labels import EMOTIONS, IMAGE_SIZE, SPLITS

EVAL_SPLITS = ("val", "test")

# Check names, in report order, with what each one asserts.
CHECKS: dict[str, str] = {
    "schema": "the manifest has the expected columns and types",
    "labels_known": "every label is one of the 7 emotions",
    "splits_present": "train, val and test each hold images",
    "train_classes_present": "every emotion has training images",
    "images_48x48_gray": "every image was 48x48 grayscale as read (others were converted)",
    "no_blank_images": "no image is near-blank (pixel std under the threshold)",
    "no_duplicates_within_split": "no two images in one split are pixel-identical",
    "no_train_eval_leakage": "no val/test image has a pixel-identical copy in train",
    "no_label_conflicts": "pixel-identical images carry the same label",
    "class_proportions_match": "val and test class proportions are within the tolerance of train's",
}
CheckName = Literal[
    "schema",
    "labels_known",
    "splits_present",
    "train_classes_present",
    "images_48x48_gray",
    "no_blank_images",
    "no_duplicates_within_split",
    "no_train_eval_leakage",
    "no_label_conflicts",
    "class_proportions_match",
]


class QualityPolicy(BaseModel):
    """What the gate checks and what it does about failures; configs set it on the validate step."""

    model_config = ConfigDict(extra="forbid")

    fail_on: list[CheckName] = Field(
        default_factory=lambda: ["schema", "labels_known", "splits_present", "train_classes_present"]
    )  # failed checks that stop the run; every other failed check warns
    blank_std_threshold: float = Field(2.0, ge=0)  # pixel std (0-255 scale) under which an image is blank
    proportion_tolerance: float = Field(0.02, ge=0, le=1)  # max |p_split(c) - p_train(c)| per class
    dedupe: Literal["drop_from_train", "none"] = "none"  # drop train copies of val/test images
    drop_blank: bool = False  # drop near-blank images from train
    max_examples: int = Field(20, ge=1)  # ids listed per failed check


def flag_images(manifest: pd.DataFrame, blank_std_threshold: float) -> pd.DataFrame:
    """The manifest plus boolean defect columns and a duplicate-group id.

    `dup_group` numbers each set of pixel-identical images (-1 for unique ones);
    `dup_in_split` marks images with a twin in their own split;
    `has_train_copy` marks val/test images whose pixels also appear in train;
    `train_copy_of_eval` marks the train images that are such copies;
    `label_conflict` marks images whose twins carry another label.
    """
    frame = manifest.copy()
    frame["split"] = frame["split"].astype(str)
    frame["label"] = frame["label"].astype(str)
    frame["blank"] = frame["pixel_std"] < blank_std_threshold
    frame["wrong_format"] = (frame["width"] != IMAGE_SIZE) | (frame["height"] != IMAGE_SIZE) | (frame["mode"] != "L")

    group_size = frame.groupby("pixel_hash")["pixel_hash"].transform("size")
    codes, _ = pd.factorize(frame["pixel_hash"])
    frame["dup_group"] = np.where(group_size > 1, codes, -1)
    frame["dup_in_split"] = frame.groupby(["split", "pixel_hash"])["pixel_hash"].transform("size") > 1

    train_hashes = set(frame.loc[frame["split"] == "train", "pixel_hash"])
    eval_hashes = set(frame.loc[frame["split"].isin(EVAL_SPLITS), "pixel_hash"])
    frame["has_train_copy"] = frame["split"].isin(EVAL_SPLITS) & frame["pixel_hash"].isin(train_hashes)
    frame["train_copy_of_eval"] = (frame["split"] == "train") & frame["pixel_hash"].isin(eval_hashes)
    frame["label_conflict"] = frame.groupby("pixel_hash")["label"].transform("nunique") > 1
    return frame


def split_table(flags: pd.DataFrame) -> pd.DataFrame:
    """One row per split (all three, even when empty): image count."""
    counts = flags["split"].value_counts()
    return pd.DataFrame({"split": list(SPLITS), "images": [int(counts.get(s, 0)) for s in SPLITS]})


def class_table(flags: pd.DataFrame) -> pd.DataFrame:
    """One row per emotion: counts per split, proportions, and each eval split's gap to train."""
    counts = flags.groupby(["label", "split"]).size().unstack(fill_value=0)
    table = pd.DataFrame({"label": list(EMOTIONS)})
    for split in SPLITS:
        column = counts[split] if split in counts.columns else pd.Series(dtype=int)
        table[f"{split}_count"] = [int(column.get(e, 0)) for e in EMOTIONS]
        total = table[f"{split}_count"].sum()
        table[f"{split}_share"] = table[f"{split}_count"] / total if total else 0.0
    for split in EVAL_SPLITS:
        has_split = table[f"{split}_count"].sum() > 0
        gap = (table[f"{split}_share"] - table["train_share"]).abs()
        table[f"{split}_gap"] = gap if has_split else 0.0  # an absent split is reported by splits_present
    return table


def quality_summary(flags: pd.DataFrame) -> dict:
    """The headline counts `ferkit validate --json` prints."""
    groups = flags[flags["dup_group"] >= 0]
    conflicts = flags[flags["label_conflict"]]
    per_split = {
        split: {e: int(((flags["split"] == split) & (flags["label"] == e)).sum()) for e in EMOTIONS} for split in SPLITS
    }
    return {
        "images": int(len(flags)),
        "duplicate_groups": int(groups["dup_group"].nunique()),
        "files_in_duplicate_groups": int(len(groups)),
        "duplicates_within_split": int(flags["dup_in_split"].sum()),
        "val_images_with_train_copy": int((flags["has_train_copy"] & (flags["split"] == "val")).sum()),
        "test_images_with_train_copy": int((flags["has_train_copy"] & (flags["split"] == "test")).sum()),
        "train_copies_of_eval_images": int(flags["train_copy_of_eval"].sum()),
        "label_conflict_groups": int(conflicts["pixel_hash"].nunique()),
        "files_in_label_conflicts": int(len(conflicts)),
        "blank_images": int(flags["blank"].sum()),
        "converted_images": int(flags["wrong_format"].sum()),
        "class_counts": per_split,
    }


def train_copy_mask(data) -> np.ndarray:
    """Rows of a FERDataset in val/test whose pixels also appear in train (the leaked ones)."""
    import hashlib

    hashes = np.array([hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest() for img in data.images])
    train = set(hashes[data.split_mask("train")])
    is_eval = ~data.split_mask("train")
    return is_eval & np.isin(hashes, list(train))
