"""Reading FER2013 into one in-memory data set, and augmenting batches of it.

Names load on first use, so `from ferkit.data.labels import EMOTIONS` (inference)
does not pay for pandas and the readers.
"""

import importlib

_EXPORTS = {
    "DATA_ENV_VAR": "ferkit.data.readers",
    "EMOTIONS": "ferkit.data.labels",
    "IMAGE_SIZE": "ferkit.data.labels",
    "SPLITS": "ferkit.data.labels",
    "DataError": "ferkit.data.errors",
    "DataNotFoundError": "ferkit.data.errors",
    "FERDataset": "ferkit.data.dataset",
    "IngestReport": "ferkit.data.dataset",
    "file_sha256": "ferkit.data.readers",
    "read_fer2013": "ferkit.data.readers",
    "resolve_data_path": "ferkit.data.readers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ferkit.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
