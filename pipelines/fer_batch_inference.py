"""`fer_batch_inference`: a folder of images in, one prediction per face out, with drift.

zenml pipeline run pipelines.fer_batch_inference -c configs/batch_inference.yaml
"""

from zenml import pipeline

from steps.drift.report_batch_drift import report_batch_drift
from steps.inference.predict_folder import predict_folder
from steps.ingest.fingerprint_source import fingerprint_source
from steps.ingest.ingest_fer2013 import ingest_fer2013


@pipeline(name="fer_batch_inference")
def fer_batch_inference(
    image_dir: str,
    model_uri: str = "models:/fer_emotion@champion",
    detect: bool = True,
    int8: bool = False,
    data_path: str | None = None,
) -> None:
    # Reference data: the training faces (ingest is cached on the archive's hash).
    source_sha256 = fingerprint_source(data_path=data_path)
    fer_dataset, _manifest = ingest_fer2013(source_sha256=source_sha256, data_path=data_path)

    # Predictions: faces found, cropped and classified by the champion (int8 calibrated on training faces).
    _predictions, faces = predict_folder(
        image_dir=image_dir, fer_dataset=fer_dataset, model_uri=model_uri, detect=detect, int8=int8
    )

    # Drift of the batch against the training data.
    report_batch_drift(faces=faces, fer_dataset=fer_dataset)
