"""Reading FER2013 into one in-memory data set, and augmenting batches of it."""

from ferkit.data.dataset import FERDataset, IngestReport
from ferkit.data.errors import DataError, DataNotFoundError
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE, SPLITS
from ferkit.data.readers import DATA_ENV_VAR, file_sha256, read_fer2013, resolve_data_path

__all__ = [
    "DATA_ENV_VAR",
    "EMOTIONS",
    "IMAGE_SIZE",
    "SPLITS",
    "DataError",
    "DataNotFoundError",
    "FERDataset",
    "IngestReport",
    "file_sha256",
    "read_fer2013",
    "resolve_data_path",
]
