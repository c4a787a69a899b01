"""Hash the data file so that the ingest step's cache key follows its content."""

from typing import Annotated

from zenml import step

from ferkit.data import file_sha256, resolve_data_path
from steps import context


@step(enable_cache=False)
@context.stops_when_asked
def fingerprint_source(data_path: str | None = None) -> Annotated[str, "source_sha256"]:
    """sha256 of the archive, CSV or folder at `data_path` (else $FER2013_PATH).

    Never cached: it is what decides whether `ingest_fer2013` may be.
    """
    return file_sha256(resolve_data_path(data_path))
