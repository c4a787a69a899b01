"""`fer_batch_inference`: a folder of images in, one prediction per face out, with drift.

    zenml pipeline run pipelines.fer_batch_inference -c configs/batch_inference.yaml
"""

from zenml import pipeline

from steps.drift.report_batch_drift import report_batch_drift
from steps.inference.predict_folder import predict_folder
from steps.ingest.fingerprint_source import fingerprint_source
from steps.ingest.ingest_fer2013 import ingest_fer2013


@pipeline(name="fer_batch_inference")
def fer_batch_inference(image_dir: str, model_uri: str = "models:/fer_emotion@champion",
                        detect: bool = True, data_path: str | None = None) -> None:
    # Predictions: faces found, cropped and classified by the champion (or the given model).
    _predictions, faces = predict_folder(image_dir=image_dir, model_uri=model_uri, detect=detect)

    # Drift of the batch against the training data (ingest is cached on the archive's hash).
    source_sha256 = fingerprint_source(data_path=data_path)
    fer_dataset, _manifest = ingest_fer2013(source_sha256=source_sha256, data_path=data_path)
    report_batch_drift(faces=faces, fer_dataset=fer_dataset)
