"""Canonical label and split vocabulary.

The label order is the challenge CSV's (`fer2013.csv`, column `emotion`):
0=angry 1=disgust 2=fear 3=happy 4=sad 5=surprise 6=neutral. Every array,
logit vector and saved model in ferkit uses this order.
"""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
LABEL_OF: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

# Split codes stored in the data set artifact; the FER2013 names map onto them.
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_OF_USAGE: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}

IMAGE_SIZE = 48

# File endings read as images, in data folders and wherever a user points ferkit at pictures.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
