"""What a backbone comparison measured, read from and written to MLflow: each row's finished
run and registered version, its figures, its training and inference speeds (measured for every
row in one process, so the speeds compare), the registry tags that carry the figures, and a
summary run with the table and the chart."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities import Run, ViewType
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ferkit.comparison import COLUMNS, COMPARISON_TAG, CONFIG_TAG, ROW_TAG, VERSION_TAG_PREFIX
from ferkit.registry.names import DUPLICATE_OF
from ferkit.registry.store import ModelNotFound, fetch_checkpoint

SPEED_METRIC = "benchmark.inference_faces_per_second"
TRAIN_SPEED_METRIC = "benchmark.train_images_per_second"
SPEED_FACES = 2048  # faces timed per row, in batches of 512
TRAIN_BATCHES = 3  # training batches timed per row, after 3 of warm-up
SUMMARY_TAG = "comparison.summary"
COMPARED_IN = VERSION_TAG_PREFIX + "comparison"  # version tag: the spec whose table the version is in


def finished_rows(configs: Mapping[str, dict], registered_model_name: str) -> dict[str, tuple[Run, ModelVersion]]:
    """row -> (its newest active run of the current row fingerprint that was evaluated and whose
    weights are a version of `registered_model_name`, that version). The version is the run's own, or
    the one it duplicates (a rerun that gave the same weights registers nothing new). A row whose
    recipe changed since, or whose run stopped before registering, is absent."""
    client = mlflow.MlflowClient()
    found: dict[str, tuple[Run, ModelVersion]] = {}
    for name, config in configs.items():
        tracker = config["settings"]["experiment_tracker"]
        experiment = client.get_experiment_by_name(tracker["experiment_name"])
        if experiment is None:
            continue
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{CONFIG_TAG}` = '{tracker['tags'][CONFIG_TAG]}' and tags.`{ROW_TAG}` = '{name}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time DESC"],
        )
        for run in runs:
            version = _registered_version(client, run, registered_model_name)
            if version is not None and "test.accuracy" in run.data.metrics:
                found[name] = (run, version)
                break
    return found


def _registered_version(client: mlflow.MlflowClient, run: Run, name: str) -> ModelVersion | None:
    own = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'")
    if own:
        return max(own, key=lambda v: int(v.version))
    duplicate = run.data.tags.get(DUPLICATE_OF, "")  # "NAME/VERSION": these weights were registered already
    model, _, number = duplicate.rpartition("/")
    if model != name or not number:
        return None
    try:
        return client.get_model_version(name, number)
    except MlflowException:
        return None  # that version was deleted since


def row_figures(name: str, run: Run, version: ModelVersion) -> dict:
    """The table's figures of one row from its run: PrivateTest (headline views, the checkpoint
    chosen on PublicTest), the size, the training time; the speeds once `measure_speeds` has run."""
    metrics, params = run.data.metrics, run.data.params
    parameters = params.get("model.parameters")
    return {
        "row": name,
        "architecture": params.get("train.architecture") or params.get("model.architecture") or "",
        "parameters_m": float(parameters) / 1e6 if parameters else None,
        **{key: metrics.get(f"test.{key}") for key in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")},
        "recall_fear": metrics.get("test.recall.fear"),
        "recall_disgust": metrics.get("test.recall.disgust"),
        "val_macro_f1": metrics.get("train.best_val_macro_f1"),
        "train_images_per_second": metrics.get(TRAIN_SPEED_METRIC),
        "train_minutes": metrics["train.seconds"] / 60 if "train.seconds" in metrics else None,
        "inference_faces_per_second": metrics.get(SPEED_METRIC),
        "version": int(version.version),
        "run_id": run.info.run_id,
        "checkpoint_run_id": version.run_id,  # a duplicate's checkpoint lies in the run that registered it
    }


def measure_speeds(
    rows: list[dict], configs: Mapping[str, dict], count: int = SPEED_FACES, progress: bool = True
) -> list[str]:
    """Time, in this one process and on the same random faces, each row's training (its recipe, a few
    batches after a warm-up) and its registered checkpoint's inference (fp32 on the CPU, one view,
    batches of 512), so the speeds compare whatever else ran beside each row's training. The figures
    go to the row and to its run. Returns a warning per row whose checkpoint could not be read."""
    from tqdm import tqdm

    from ferkit.inference.speed import torch_faces_per_second
    from ferkit.training import TrainConfig
    from ferkit.training.speed import training_throughput

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(count, 48, 48), dtype=np.uint8)
    labels = np.arange(count) % 7
    client = mlflow.MlflowClient()
    warnings = []
    for row in tqdm(rows, desc="training and inference speed", unit="model", disable=not progress):
        recipe = TrainConfig(**configs[row["row"]]["steps"]["train_model"]["parameters"]["config"])
        row["train_images_per_second"] = training_throughput(recipe, faces, labels, TRAIN_BATCHES)["images_per_second"]
        client.log_metric(row["run_id"], TRAIN_SPEED_METRIC, row["train_images_per_second"])
        try:
            source = row["checkpoint_run_id"]
            network = fetch_checkpoint(source, f"{row['row']} (version {row['version']}, run {source})").build()
        except ModelNotFound as exc:
            warnings.append(f"{row['row']}: no inference speed: {exc}")
            continue
        row["inference_faces_per_second"] = torch_faces_per_second(network, faces)
        client.log_metric(row["run_id"], SPEED_METRIC, row["inference_faces_per_second"])
    return warnings


def tag_versions(rows: list[dict], comparison: str, registered_model_name: str) -> None:
    """Each row's figures as `compare.*` tags of its version, so `ferkit versions` shows the table;
    an older version of the same comparison and row loses its tags (it is not in the table)."""
    client = mlflow.MlflowClient()
    current = {str(row["version"]) for row in rows}
    for version in client.search_model_versions(f"name = '{registered_model_name}'"):
        tags = version.tags or {}
        stale = tags.get(COMPARED_IN) == comparison and tags.get(VERSION_TAG_PREFIX + "row") in {r["row"] for r in rows}
        if stale and str(version.version) not in current:
            for key in [k for k in tags if k.startswith(VERSION_TAG_PREFIX)]:
                client.delete_model_version_tag(registered_model_name, str(version.version), key)
    for row in rows:
        client.set_model_version_tag(registered_model_name, str(row["version"]), COMPARED_IN, comparison)
        for key, _, fmt in COLUMNS:
            if row.get(key) is not None:
                value = row[key] if fmt == "{}" else f"{float(row[key]):.6g}"
                client.set_model_version_tag(
                    registered_model_name, str(row["version"]), VERSION_TAG_PREFIX + key, value
                )


def rows_from_tags(tags: Mapping[str, str]) -> dict | None:
    """A version's comparison row back from its `compare.*` tags; None when it has none."""
    if COMPARED_IN not in tags:
        return None
    row: dict = {"comparison": tags[COMPARED_IN]}
    for key, _, fmt in COLUMNS:
        value = tags.get(VERSION_TAG_PREFIX + key)
        row[key] = None if value is None else (value if fmt == "{}" else float(value))
    return row


def report(
    spec_path: str | Path,
    spec: dict,
    configs: Mapping[str, dict],
    rows_wanted: list[str],
    out: str | Path,
    speed_faces: int = SPEED_FACES,
) -> tuple[list[dict], dict[str, Path], list[str]]:
    """The table of the rows in `rows_wanted` that have a finished run: their figures, inference speeds
    timed here, `compare.*` tags on their versions, comparison.md/.json/.png in `out` and a summary
    run in the experiment. Returns (rows, the files written, warnings)."""
    from ferkit.comparison import report_meta, write_report

    name = spec["registered_model_name"]
    finished = finished_rows(configs, name)
    rows = [row_figures(row, *finished[row]) for row in rows_wanted if row in finished]
    if not rows:
        return [], {}, []
    warnings = measure_speeds(rows, configs, speed_faces)
    comparison = Path(spec_path).stem
    tag_versions(rows, comparison, name)
    paths = write_report(rows, spec, out, report_meta(spec_path, spec, configs[rows[0]["row"]]))
    log_summary(spec["experiment_name"], comparison, paths, rows)
    return rows, paths, warnings


def log_summary(experiment_name: str, comparison: str, paths: Mapping[str, Path], rows: list[dict]) -> str:
    """One run in the comparison's experiment holding the table, its JSON and the chart; returns its id."""
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run(
        run_name=f"{comparison}-table", tags={COMPARISON_TAG: comparison, SUMMARY_TAG: "true"}
    ) as run:
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="comparison")
        for row in rows:
            for key in ("balanced_accuracy", "macro_f1", "inference_faces_per_second"):
                if row.get(key) is not None:
                    mlflow.log_metric(f"{row['row']}.{key}", float(row[key]))
    return run.info.run_id
