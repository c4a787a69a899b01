"""`fer_retraining`: new labelled faces in, a warm-started model through the same gate out.

Run from the repository root (the batch: a folder, zip or CSV in the FER2013 layout):
    zenml pipeline run pipelines.fer_retraining -c configs/retraining.yaml
Scheduled on a cluster with configs/schedule.yaml; on one machine with
    ferkit schedule install --cron "0 3 * * 1"
"""

from zenml import pipeline

from steps.ingest.fingerprint_source import fingerprint_source
from steps.retrain.decide import decide_retraining, report_new_data_drift
from steps.retrain.load_champion import load_champion
from steps.retrain.new_data import ingest_new_data, merge_new_data, validate_new_data
from steps.retrain.promote import evaluate_retrained, promote_retrained
from steps.retrain.retrain_model import retrain_model
from steps.weights.compute_class_weights import compute_class_weights


@pipeline(name="fer_retraining")
def fer_retraining(new_data_path: str, data_path: str | None = None, force: bool = False) -> None:
    # The champion, its weights and the data it was trained on (lineage from the registry).
    champion, champion_data, champion_holdout, champion_info = load_champion(data_path=data_path)

    # The batch: hashed, read, and through the quality gate before anything else happens.
    new_sha256 = fingerprint_source(data_path=new_data_path, id="fingerprint_new_data")
    new_data, new_manifest = ingest_new_data(source_sha256=new_sha256, new_data_path=new_data_path)
    checked = validate_new_data(new_data=new_data, new_manifest=new_manifest)

    # Merge (new images to train, a held-out share apart), drift against the champion's data, decide.
    merged, holdout, lineage = merge_new_data(
        champion_data=champion_data, champion_holdout=champion_holdout, new_data=checked, new_sha256=new_sha256
    )
    drift = report_new_data_drift(
        champion_data=champion_data, champion_holdout=champion_holdout, new_data=checked, champion=champion
    )
    decision = decide_retraining(lineage=lineage, new_data_drift=drift, force=force)

    # Fine-tune from the champion, score on the fixed test split and the held-out new images, promote.
    class_weights = compute_class_weights(merged)
    model = retrain_model(
        retrain_decision=decision, merged_dataset=merged, class_weights=class_weights, champion=champion
    )
    test_metrics, holdout_metrics = evaluate_retrained(
        retrain_decision=decision, model=model, champion=champion, merged_dataset=merged, new_holdout=holdout
    )
    promote_retrained(
        retrain_decision=decision,
        model=model,
        test_metrics=test_metrics,
        holdout_metrics=holdout_metrics,
        merged_dataset=merged,
        new_holdout=holdout,
        lineage=lineage,
        champion_info=champion_info,
    )
