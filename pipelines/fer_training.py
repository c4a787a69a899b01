"""`fer_training`: FER2013 in, a registered emotion model out.

Run from the repository root:
    zenml pipeline run pipelines.fer_training -c configs/smoke.yaml
"""

from zenml import pipeline

from steps.drift.report_drift import report_drift
from steps.evaluate.evaluate_model import evaluate_model
from steps.ingest.fingerprint_source import fingerprint_source
from steps.ingest.ingest_fer2013 import ingest_fer2013
from steps.oversample.oversample_minority import oversample_minority
from steps.register.register_model import register_model
from steps.train.train_model import train_model
from steps.validate.validate_data import validate_data
from steps.weights.compute_class_weights import compute_class_weights


@pipeline(name="fer_training")
def fer_training(data_path: str | None = None) -> None:
    # Ingest: hash the source (decides caching), decode every image once.
    source_sha256 = fingerprint_source(data_path=data_path)
    fer_dataset, manifest = ingest_fer2013(source_sha256=source_sha256, data_path=data_path)

    # Quality gate: great-expectations checks, stop or warn, dedupe / drop blanks from train.
    validated_dataset, _report, _summary = validate_data(fer_dataset=fer_dataset, manifest=manifest)

    # GAN oversampling: synthetic faces of minority emotions join train (only train); off unless configured.
    training_dataset, _generator, _gan_quality = oversample_minority(fer_dataset=validated_dataset)

    # Class weighting on the training split the model will see.
    class_weights = compute_class_weights(training_dataset)

    # Training; the best epoch is chosen on val (PublicTest).
    model = train_model(fer_dataset=training_dataset, class_weights=class_weights)

    # Evaluation on test (PrivateTest), touched once; drift of test against train.
    test_metrics, _evaluation_report, val_probabilities = evaluate_model(model=model, fer_dataset=validated_dataset)
    report_drift(fer_dataset=validated_dataset, model=model)

    # Registration in MLflow as `fer_emotion`, then champion/challenger promotion on val (PublicTest),
    # taking the evaluation's val probabilities when they have the gate's views.
    register_model(
        model=model, test_metrics=test_metrics, fer_dataset=validated_dataset, val_probabilities=val_probabilities
    )
