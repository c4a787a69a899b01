"""`fer_data_check`: ingest and the data quality gate alone, to vet a data set before training.

zenml pipeline run pipelines.fer_data_check -c configs/data_check.yaml
"""

from zenml import pipeline

from steps.ingest.fingerprint_source import fingerprint_source
from steps.ingest.ingest_fer2013 import ingest_fer2013
from steps.validate.validate_data import validate_data


@pipeline(name="fer_data_check")
def fer_data_check(data_path: str | None = None) -> None:
    # Ingest: hash the source (decides caching), decode every image once.
    source_sha256 = fingerprint_source(data_path=data_path)
    fer_dataset, manifest = ingest_fer2013(source_sha256=source_sha256, data_path=data_path)

    # Quality gate: the same checks and policy as fer_training.
    validate_data(fer_dataset=fer_dataset, manifest=manifest)
