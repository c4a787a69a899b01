"""Reading FER2013 into one in-memory data set, and augmenting batches of it.

Names load on first use, so `from ferkit.data.labels import EMOTIONS` (inference)
does not pay for pandas and the readers.
"""

from ferkit._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ferkit.data.readers": ("DATA_ENV_VAR", "file_sha256", "read_fer2013", "resolve_data_path"),
        "ferkit.data.labels": ("EMOTIONS", "IMAGE_SIZE", "SPLITS"),
        "ferkit.data.errors": ("DataError", "DataNotFoundError"),
        "ferkit.data.dataset": ("FERDataset", "IngestReport"),
    },
)
