"""`ferkit` command line: the one edge of the library that may import zenml or mlflow (lazily).

    ferkit stack          register and activate the local ZenML stack `fer_local`
    ferkit tracking-uri   print the MLflow tracking URI of the active stack
    ferkit info PATH      read a FER2013 zip, folder or CSV and print what it holds
    ferkit validate PATH  run the data quality gate on it and print the report
    ferkit evaluate --model URI_OR_PATH --data PATH   score a saved or registered model
    ferkit predict PATH... [--model URI] [--json] [--no-detect]   emotions of the faces in images
    ferkit promote VERSION | ferkit rollback          move the `champion` alias by hand
    ferkit compare configs/compare_backbones.yaml [--only NAME] [--dry-run]   one fer_training run
                          per backbone, all in one MLflow experiment
    ferkit schedule install --cron "0 3 * * 1" | list | remove NAME   fer_retraining from this machine's crontab
    ferkit stack-remote kubernetes|kubeflow [--dry-run]   register the cluster stack of configs/stacks/
    ferkit cluster-config configs/paper.yaml --target kubernetes [-o FILE]   a run config with
                          configs/cluster/<target>.yaml merged over it, validated
    ferkit train --config configs/cpu.yaml --out model.pt   the train step alone, without ZenML;
                          under `torchrun --nproc-per-node N` it trains data-parallel on N processes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

STACK_NAME = "fer_local"
TRACKER_NAME = "fer_mlflow"
REGISTRY_NAME = "fer_registry"


def setup_local_stack(root: str | Path = ".") -> dict[str, str]:
    """Idempotently: `zenml init` at `root`, an MLflow experiment tracker and model
    registry, and the stack `fer_local` on the default orchestrator and artifact
    store, made active. Returns the component names."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    root = Path(root).resolve()
    if not (root / ".zen").exists():
        Client.initialize(root=root)
    client = Client()

    def ensure(name: str, component_type: StackComponentType, flavor: str) -> None:
        existing = client.list_stack_components(name=name, type=component_type)
        if not existing.items:
            client.create_stack_component(
                name=name, flavor=flavor, component_type=component_type, configuration={}
            )

    ensure(TRACKER_NAME, StackComponentType.EXPERIMENT_TRACKER, "mlflow")
    ensure(REGISTRY_NAME, StackComponentType.MODEL_REGISTRY, "mlflow")
    if not client.list_stacks(name=STACK_NAME).items:
        client.create_stack(
            name=STACK_NAME,
            components={
                StackComponentType.ORCHESTRATOR: "default",
                StackComponentType.ARTIFACT_STORE: "default",
                StackComponentType.EXPERIMENT_TRACKER: TRACKER_NAME,
                StackComponentType.MODEL_REGISTRY: REGISTRY_NAME,
            },
        )
    client.activate_stack(STACK_NAME)
    return {"stack": STACK_NAME, "experiment_tracker": TRACKER_NAME, "model_registry": REGISTRY_NAME}


def tracking_uri() -> str:
    """MLflow tracking URI of the active stack's experiment tracker."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    if tracker is None:
        raise RuntimeError("the active ZenML stack has no experiment tracker; run `make stack`")
    return tracker.get_tracking_uri()


def _cmd_stack(args: argparse.Namespace) -> int:
    names = setup_local_stack(args.root)
    _uri_file().parent.mkdir(parents=True, exist_ok=True)
    _uri_file().write_text(tracking_uri() + "\n")
    print(f"active stack: {names['stack']} (experiment tracker {names['experiment_tracker']}, "
          f"model registry {names['model_registry']})")
    print(f"MLflow tracking URI: {tracking_uri()}")
    return 0


def _cmd_tracking_uri(args: argparse.Namespace) -> int:
    print(tracking_uri())
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ferkit.data import read_fer2013

    data = read_fer2013(args.path, on_bad_image=args.on_bad_image, progress=not args.json)
    summary = data.summary()
    summary.pop("original_formats", None)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['source']} ({summary['source_format']}): {summary['images']} images")
    for split, count in summary["splits"].items():
        classes = ", ".join(f"{k} {v}" for k, v in summary["classes"][split].items())
        print(f"  {split:5s} {count:6d}  {classes}")
    print(f"  converted to 48x48 grayscale: {summary['converted']}; undecodable, skipped: {len(summary['bad_files'])}")
    for split, missing in summary["missing_classes"].items():
        print(f"  {split}: no images of {', '.join(missing)}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the gate passes (warnings allowed), 1 when a `fail_on` check failed, 2 when unreadable."""
    import yaml

    from ferkit.data import read_fer2013
    from ferkit.data.errors import DataError
    from ferkit.data.manifest import build_manifest
    from ferkit.quality import QualityPolicy, run_expectations

    policy = QualityPolicy()
    if args.policy:
        policy = QualityPolicy(**(yaml.safe_load(Path(args.policy).read_text()) or {}))
    try:
        data = read_fer2013(args.path, on_bad_image="skip", progress=not args.json)
    except DataError as exc:
        if args.json:
            print(json.dumps({"passed": False, "readable": False, "error": str(exc)}, indent=2))
        else:
            print(f"ferkit validate: the data cannot be read: {exc}", file=sys.stderr)
        return 2
    report, _ = run_expectations(build_manifest(data), policy)
    if args.json:
        payload = {
            "source": str(data.report.source),
            "passed": report.passed,
            "readable": True,
            "bad_files": data.report.bad_files,
            **{k: v for k, v in report.summary.items()},
            "checks": [c.model_dump() for c in report.checks],
        }
        print(json.dumps(payload, indent=2))
    else:
        print(report.to_markdown())
        if data.report.bad_files:
            print(f"undecodable files skipped: {', '.join(data.report.bad_files[:10])}")
    return 0 if report.passed else 1


class ModelNotFound(RuntimeError):
    """A model path or URI that does not resolve."""


URI_FILE = "ferkit_tracking_uri"  # written by `ferkit stack` beside ZenML's config


def _uri_file() -> Path:
    config = os.environ.get("ZENML_CONFIG_PATH") or str(Path(".ferkit/zenml").resolve())
    return Path(config) / URI_FILE


def _use_stack_tracking() -> None:
    """MLflow's tracking URI: $MLFLOW_TRACKING_URI, else the one `ferkit stack` recorded.

    ZenML is not asked: importing it is slow and, outside a project, would create
    a global ZenML config."""
    import mlflow

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return
    recorded = _uri_file()
    if not recorded.is_file():
        raise ModelNotFound(
            f"no MLflow tracking store known here ({recorded} is missing): run from the project "
            "folder after `make stack`, or set MLFLOW_TRACKING_URI"
        )
    mlflow.set_tracking_uri(recorded.read_text().strip())


CHECKPOINT_ARTIFACT = "checkpoint/ferkit_model.pt"


def _local_checkpoint(uri: str) -> Path | None:
    """Fast path for the local stack: resolve `models:/` in MLflow's SQLite store read-only
    and return the checkpoint file in the local artifact store, without importing MLflow
    (it costs seconds of start-up). None whenever anything differs from that layout."""
    import sqlite3
    from urllib.parse import unquote, urlparse

    tracking = os.environ.get("MLFLOW_TRACKING_URI") or (
        _uri_file().read_text().strip() if _uri_file().is_file() else ""
    )
    if not tracking.startswith("sqlite:///"):
        return None
    ref = uri[len("models:/"):]
    try:
        with sqlite3.connect(f"file:{tracking[len('sqlite:///'):]}?mode=ro", uri=True) as db:
            if "@" in ref:
                name, alias = ref.split("@", 1)
                row = db.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                 (name, alias)).fetchone()
                if row is None:
                    return None
                version = row[0]
            else:
                name, version = ref.rsplit("/", 1)
            row = db.execute(
                "SELECT r.artifact_uri FROM model_versions v JOIN runs r ON r.run_uuid = v.run_id "
                "WHERE v.name = ? AND v.version = ?", (name, int(version))).fetchone()
    except (sqlite3.Error, ValueError):
        return None
    if row is None or not row[0].startswith("file:"):
        return None
    path = Path(unquote(urlparse(row[0]).path)) / CHECKPOINT_ARTIFACT
    return path if path.is_file() else None


def load_trained_model(uri_or_path: str):
    """A ferkit checkpoint file, or a registry URI `models:/NAME@ALIAS` / `models:/NAME/VERSION`."""
    from ferkit.models import TrainedModel

    if Path(uri_or_path).is_file():
        return TrainedModel.load(uri_or_path)
    if not uri_or_path.startswith("models:/"):
        raise ModelNotFound(f"'{uri_or_path}' is neither a checkpoint file nor a models:/ URI")
    local = _local_checkpoint(uri_or_path)
    if local is not None:
        return TrainedModel.load(local)
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    _use_stack_tracking()
    client = mlflow.MlflowClient()
    ref = uri_or_path[len("models:/"):]
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = ref.rsplit("/", 1)
            version = client.get_model_version(name, number)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=CHECKPOINT_ARTIFACT, dst_path=tmp
            )
            return TrainedModel.load(local)
    except (MlflowException, ValueError, OSError) as exc:
        raise ModelNotFound(f"model '{uri_or_path}' does not resolve: {str(exc).splitlines()[0]}") from None


# ferkit.models.predict.TTA_MODES, spelled out so that the CLI starts without importing torch.
CLI_TTA_MODES = ("none", "flip", "ten_crop", "multi_scale", "multi_view")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ferkit.data import read_fer2013
    from ferkit.inference import evaluate, write_report
    from ferkit.quality.checks import train_copy_mask

    model = load_trained_model(args.model)
    data = read_fer2013(args.data, progress=not args.json)
    has_val = data.split_counts()["val"] > 0 and args.split != "val"
    result = evaluate(model, data, split=args.split, tta=args.tta, fit_temperature_on="val" if has_val else None,
                      leakage_mask=train_copy_mask(data), bootstrap_resamples=args.bootstrap)
    if args.report:
        write_report(result, args.report)
    if args.json:
        print(json.dumps({"model": args.model, "data": str(args.data), "split": args.split,
                          "images": result.images, "classes_present": result.classes_present,
                          "metrics": result.flat_metrics()}, indent=2))
    else:
        m = result.metrics
        print(f"{args.model} on {args.split} ({result.images} images, TTA {result.tta}); "
              f"classes: {', '.join(result.classes_present)}")
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece"):
            print(f"  {key:18s} {m[key]:.4f}")
    return 0


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _image_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


def _cmd_predict(args: argparse.Namespace) -> int:
    """Exit 0 when every file was read (faces found or not), 1 when some could not be read."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from ferkit.inference.predictor import Predictor, detect_faces, to_face_array

    predictor = Predictor(load_trained_model(args.model))
    results, failed = [], 0
    for path in _image_files(args.paths):
        entry: dict = {"file": str(path), "faces": []}
        try:
            with Image.open(path) as img:
                gray = np.asarray(img.convert("L"))
        except (OSError, UnidentifiedImageError) as exc:
            entry["error"] = f"cannot read image: {exc}"
            failed += 1
            results.append(entry)
            continue
        if args.no_detect:
            boxes = [(0, 0, gray.shape[1], gray.shape[0])]
        else:
            boxes = detect_faces(gray)
            if not boxes:
                entry["error"] = "no face found"
        crops = [to_face_array(gray[y : y + h, x : x + w]) for x, y, w, h in boxes]
        for box, prediction in zip(boxes, predictor.predict(crops) if crops else []):
            entry["faces"].append({"box": list(box), **prediction})
        results.append(entry)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for entry in results:
            if "error" in entry and not entry["faces"]:
                print(f"{entry['file']}: {entry['error']}")
            for face in entry["faces"]:
                top = face["probabilities"][face["label"]]
                print(f"{entry['file']}: box {tuple(face['box'])} -> {face['label']} ({top:.2f})")
    return 1 if failed else 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from steps.register import promotion

    _use_stack_tracking()
    old = promotion.promote(args.name, str(args.version), reason=args.reason)
    was = f" (was v{old.version}, now '{promotion.PREVIOUS}')" if old else ""
    print(f"{args.name} v{args.version} is now the champion{was}")
    return 0


def _cmd_versions(args: argparse.Namespace) -> int:
    from steps.register import promotion

    _use_stack_tracking()
    rows = promotion.list_versions(args.name, args.metric)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'version':>7}  {'aliases':<28} {'score':>8}  {'metric':<26} {'decision':<10} {'weights':<12} created")
    for row in rows:
        score = "-" if row["score"] is None else f"{row['score']:.4f}"
        print(f"{row['version']:>7}  {','.join(row['aliases']) or '-':<28} {score:>8}  {row['metric']:<26} "
              f"{row['decision'] or '-':<10} {row['weights_sha256'][:12] or '-':<12} {row['created']}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from steps.register import promotion

    _use_stack_tracking()
    demoted, restored = promotion.rollback(args.name)
    print(f"{args.name}: champion rolled back from v{demoted} to v{restored}")
    return 0


def comparison_configs(spec_path: str | Path) -> dict[str, dict]:
    """backbone name -> a full fer_training config: the spec's base config with that backbone,
    its per-backbone model arguments, the shared epoch budget, one MLflow experiment and
    a registered-model name of its own (so comparisons never touch `fer_emotion`)."""
    import copy

    import yaml

    spec_path = Path(spec_path)
    spec = yaml.safe_load(spec_path.read_text())
    missing = {"base", "backbones", "experiment_name", "registered_model_name"} - set(spec)
    if missing:
        raise ValueError(f"{spec_path}: missing {sorted(missing)}")
    base_path = Path(spec["base"])
    if not base_path.is_file() and (spec_path.parent / base_path).is_file():
        base_path = spec_path.parent / base_path  # relative to the spec rather than the working folder
    base = yaml.safe_load(base_path.read_text())
    train = base["steps"]["train_model"]["parameters"]["config"]
    if train.get("architecture") != "hybrid":
        raise ValueError(f"{base_path}: the comparison swaps the hybrid model's backbone; architecture is "
                         f"{train.get('architecture')!r}")
    configs = {}
    for name, overrides in spec["backbones"].items():
        config = copy.deepcopy(base)
        trained = config["steps"]["train_model"]["parameters"]["config"]
        kwargs = dict(trained["architecture_kwargs"])
        if name != kwargs.get("backbone"):
            kwargs.pop("backbone_options", None)  # options of the base trunk mean nothing to another
        kwargs.update({"backbone": name, **(overrides or {})})
        trained["architecture_kwargs"] = kwargs
        trained.update(copy.deepcopy(spec.get("train_overrides") or {}))
        if spec.get("epochs"):
            for phase in trained.get("phases") or []:
                phase["epochs"] = min(phase["epochs"], spec["epochs"])
            trained["epochs"] = min(trained.get("epochs", spec["epochs"]), spec["epochs"])
        if spec.get("limit_per_class"):
            config["steps"]["ingest_fer2013"].setdefault("parameters", {})["limit_per_class"] = spec["limit_per_class"]
        config["steps"]["register_model"].setdefault("parameters", {})["registered_model_name"] = (
            spec["registered_model_name"])
        config.setdefault("settings", {})["experiment_tracker"] = {
            "experiment_name": spec["experiment_name"], "tags": {"comparison": spec_path.stem, "backbone": name}}
        config["run_name"] = f"{spec_path.stem}-{name}-{{date}}-{{time}}"
        config["model"] = {**config.get("model", {}), "name": spec["registered_model_name"]}
        configs[name] = config
    return configs


def _cmd_compare(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile

    import yaml

    configs = comparison_configs(args.spec)
    chosen = args.only or list(configs)
    unknown = sorted(set(chosen) - set(configs))
    if unknown:
        print(f"ferkit compare: {unknown} not in {args.spec} (has {list(configs)})", file=sys.stderr)
        return 2
    zenml = str(Path(sys.executable).parent / "zenml")
    failed = []
    with tempfile.TemporaryDirectory(prefix="ferkit-compare-") as folder:
        for name in chosen:
            path = Path(folder) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(configs[name], sort_keys=False))
            command = [zenml, "pipeline", "run", "pipelines.fer_training", "-c", str(path)]
            print(f"== {name}: {' '.join(command[1:4])} (backbone {name})", flush=True)
            if args.dry_run:
                print(yaml.safe_dump(configs[name]["steps"]["train_model"]["parameters"]["config"], sort_keys=False))
                continue
            env = {**os.environ, "FERKIT_CONFIG_FILE": str(path)}
            if subprocess.run(command, env=env).returncode != 0:
                failed.append(name)
    if failed:
        print(f"ferkit compare: runs failed for {failed}", file=sys.stderr)
        return 1
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from ferkit.scheduling import CronError, CronJob, Crontab, validate_cron
    from ferkit.scheduling.crontab import job_command

    try:
        crontab = Crontab()
        if args.action == "list":
            jobs = crontab.jobs()
            for job in jobs:
                print(f"{job.name}\t{job.cron}\t{job.command}")
            if not jobs:
                print("no ferkit schedules installed")
            return 0
        if args.action == "remove":
            job = crontab.remove(args.name)
            print(f"removed schedule {job.name!r} ({job.cron})")
            return 0
        cron = validate_cron(args.cron)
        project = Path(args.project).resolve()
        config = (project / args.config).resolve()
        if not config.is_file():
            raise CronError(f"config {config} does not exist")
        import yaml

        if "schedule" in (yaml.safe_load(config.read_text()) or {}):
            raise CronError(f"config {config} has a `schedule:`, which ZenML's local orchestrator cannot run; "
                            "cron runs the pipeline at the times you give, so use a config without one "
                            "(configs/retraining.yaml rather than configs/schedule.yaml)")
        env = {"ZENML_CONFIG_PATH": os.environ.get("ZENML_CONFIG_PATH", str(project / ".ferkit" / "zenml")),
               "FERKIT_RESUME_DIR": str(project / ".ferkit" / "resume"), "FERKIT_NO_PROGRESS": "1",
               "FERKIT_CONFIG_FILE": str(config), "PYTHONPATH": str(project)}
        if os.environ.get("FER2013_PATH"):
            env["FER2013_PATH"] = str(Path(os.environ["FER2013_PATH"]).resolve())
        log = Path(args.log).resolve() if args.log else project / ".ferkit" / "logs" / f"{args.name}.log"
        job = CronJob(args.name, cron, job_command(project, args.pipeline, config, log, env))
        crontab.install(job, replace=args.replace)
        print(f"installed schedule {job.name!r}: {cron}, {args.pipeline} -c {config}, log {log}")
        return 0
    except CronError as exc:
        print(f"ferkit schedule: {exc}", file=sys.stderr)
        return 2


def pipeline_step_names(pipeline: str, parameters: dict) -> set[str]:
    """Invocation names of `pipelines.<module>` composed with `parameters`."""
    import importlib

    module = importlib.import_module(pipeline)
    name = pipeline.rsplit(".", 1)[-1]
    definition = getattr(module, name)
    definition.prepare(**{k: v for k, v in parameters.items() if v is not None})
    return set(definition.invocations)


def _cmd_stack_remote(args: argparse.Namespace) -> int:
    import shlex

    from ferkit.cluster import (
        ClusterConfigError,
        register_stack,
        registration_commands,
        stack_definition,
    )

    try:
        definition = stack_definition(args.target, args.root)
        if args.dry_run:
            print(f"# integrations: zenml integration install -y {' '.join(definition.get('integrations', []))}")
            for command in registration_commands(definition):
                print(shlex.join(command))
            return 0
        register_stack(definition)
    except ClusterConfigError as exc:
        print(f"ferkit stack-remote: {exc}", file=sys.stderr)
        return 2
    print(f"registered and activated stack {definition['name']}")
    return 0


def _cmd_cluster_config(args: argparse.Namespace) -> int:
    import yaml

    from ferkit.cluster import ClusterConfigError, cluster_run_config

    try:
        base = yaml.safe_load(Path(args.config).read_text()) or {}
        names = pipeline_step_names(args.pipeline, base.get("parameters") or {})
        merged = cluster_run_config(args.config, args.target, args.root, names)
    except (ClusterConfigError, OSError) as exc:
        print(f"ferkit cluster-config: {exc}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(merged, sort_keys=False)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
        print(f"wrote {out} ({args.config} + configs/cluster/{args.target}.yaml)")
    else:
        print(text)
    return 0


def _cmd_fresh_config(args: argparse.Namespace) -> int:
    """A run config that trains from scratch: caching off, and this training's resume states removed."""
    import yaml

    try:
        config = yaml.safe_load(Path(args.config).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        print(f"ferkit fresh-config: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(config, dict):
        print(f"ferkit fresh-config: {args.config} is not a run config (a YAML mapping)", file=sys.stderr)
        return 2
    config["enable_cache"] = False
    train_parameters = ((config.get("steps") or {}).get("train_model") or {}).get("parameters") or {}
    resume_dir = train_parameters.get("resume_dir") or args.resume_dir or os.environ.get("FERKIT_RESUME_DIR")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(out)
    removed = sorted(Path(resume_dir).glob("train-*.pt")) if resume_dir else []
    for state in removed:
        state.unlink(missing_ok=True)
    where = f"{len(removed)} resume state(s) removed from {resume_dir}" if resume_dir else "no resume folder set"
    print(f"wrote {out} ({args.config} with caching off); {where}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from ferkit.data import read_fer2013
    from ferkit.data.labels import EMOTIONS
    from ferkit.data.weights import class_weights
    from ferkit.models import TrainedModel, build_model
    from ferkit.training import TrainConfig, fit, seed_everything
    from ferkit.training.distributed import init_from_env

    raw = yaml.safe_load(Path(args.config).read_text()) or {}
    try:
        section = raw["steps"]["train_model"]["parameters"]["config"]
    except (KeyError, TypeError):
        print(f"ferkit: {args.config} has no steps.train_model.parameters.config section", file=sys.stderr)
        return 2
    overrides = json.loads(args.override) if args.override else {}
    config = TrainConfig(**{**section, **overrides})
    workers = init_from_env(config.device)
    data = read_fer2013(args.data, limit_per_class=args.limit_per_class, progress=workers.is_main)
    train, val = data.split("train"), data.split("val")
    seed_everything(config.seed)  # every rank starts from the same initial weights
    model = build_model(config.architecture, **config.architecture_kwargs)
    weights = class_weights(train.labels).as_list()
    log = (lambda epoch, m: print(json.dumps({"epoch": epoch, **m}), flush=True)) if args.json else None
    result = fit(model, train.images, train.labels, val.images, val.labels, config, class_weights=weights,
                 callbacks=[log] if log else [], checkpoint_path=args.resume)
    if workers.is_main:
        TrainedModel(architecture=config.architecture, architecture_kwargs=dict(config.architecture_kwargs),
                     state_dict=result.state_dict, emotions=EMOTIONS, recipe=config.model_dump(mode="json"),
                     history=result.history).save(args.out)
        print(f"ferkit train: best epoch {result.best_epoch}, val macro-F1 {result.best_val_macro_f1:.4f}, "
              f"{workers.world_size} process(es), saved {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="FER2013 emotion-recognition toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help="register and activate the local ZenML + MLflow stack")
    stack.add_argument("--root", default=".", help="repository root for `zenml init`")
    stack.set_defaults(func=_cmd_stack)
    uri = sub.add_parser("tracking-uri", help="print the active stack's MLflow tracking URI")
    uri.set_defaults(func=_cmd_tracking_uri)
    info = sub.add_parser("info", help="read a FER2013 zip, folder or CSV and summarise it")
    info.add_argument("path", nargs="?", default=None, help="data path (default: $FER2013_PATH)")
    info.add_argument("--on-bad-image", choices=["skip", "fail"], default="skip")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)
    validate = sub.add_parser("validate", help="run the data quality gate and print its report")
    validate.add_argument("path", nargs="?", default=None, help="data path (default: $FER2013_PATH)")
    validate.add_argument("--policy", help="YAML file with QualityPolicy fields (fail_on, thresholds, ...)")
    validate.add_argument("--json", action="store_true", help="print JSON counts and checks")
    validate.set_defaults(func=_cmd_validate)
    ev = sub.add_parser("evaluate", help="evaluate a saved or registered model on any data ingest reads")
    ev.add_argument("--model", required=True, help="checkpoint file or models:/fer_emotion@champion")
    ev.add_argument("--data", default=None, help="data path (default: $FER2013_PATH)")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--tta", choices=CLI_TTA_MODES, default=None,
                    help="headline test-time augmentation (default: the recipe's, flip); every mode is reported")
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    ev.add_argument("--report", help="folder for the report (markdown, HTML, PNGs)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)
    pd_ = sub.add_parser("predict", help="find faces in images and predict their emotions")
    pd_.add_argument("paths", nargs="+", help="image files or folders")
    pd_.add_argument("--model", default="models:/fer_emotion@champion", help="checkpoint file or models:/ URI")
    pd_.add_argument("--no-detect", action="store_true", help="treat each image as one pre-cropped face")
    pd_.add_argument("--json", action="store_true")
    pd_.set_defaults(func=_cmd_predict)
    pr = sub.add_parser("promote", help="make a registered version the champion")
    pr.add_argument("version")
    pr.add_argument("--name", default="fer_emotion")
    pr.add_argument("--reason", default="promoted by hand")
    pr.set_defaults(func=_cmd_promote)
    vs = sub.add_parser("versions", help="the registered versions: aliases, test score, decision, weights hash")
    vs.add_argument("--name", default="fer_emotion", help="registered model name")
    vs.add_argument("--metric", help="test figure to show, e.g. accuracy (default: each version's gate metric)")
    vs.add_argument("--json", action="store_true")
    vs.set_defaults(func=_cmd_versions)
    rb = sub.add_parser("rollback", help="give the champion alias back to the previous champion")
    rb.add_argument("--name", default="fer_emotion")
    rb.set_defaults(func=_cmd_rollback)
    cmp_ = sub.add_parser("compare", help="train several backbones, one fer_training run each, one experiment")
    cmp_.add_argument("spec", help="comparison YAML, e.g. configs/compare_backbones.yaml")
    cmp_.add_argument("--only", nargs="+", help="run just these backbones of the spec")
    cmp_.add_argument("--dry-run", action="store_true", help="print each run's train config, run nothing")
    cmp_.set_defaults(func=_cmd_compare)
    sch = sub.add_parser("schedule", help="retrain on a cron schedule from this machine's crontab")
    sch_sub = sch.add_subparsers(dest="action", required=True)
    inst = sch_sub.add_parser("install", help="add a crontab line that runs a pipeline on a schedule")
    inst.add_argument("--cron", required=True, help='five-field cron expression, e.g. "0 3 * * 1", or @daily')
    inst.add_argument("--name", default="retrain", help="schedule name (the crontab line's marker)")
    inst.add_argument("--pipeline", default="pipelines.fer_retraining", help="pipeline to run")
    inst.add_argument("--config", default="configs/retraining.yaml", help="its run config (without a `schedule:`)")
    inst.add_argument("--project", default=".", help="project folder the job runs in")
    inst.add_argument("--log", help="log file (default .ferkit/logs/<name>.log)")
    inst.add_argument("--replace", action="store_true", help="replace a schedule of the same name")
    sch_sub.add_parser("list", help="ferkit's schedules in the crontab")
    rm = sch_sub.add_parser("remove", help="remove a schedule by name")
    rm.add_argument("name")
    sch.set_defaults(func=_cmd_schedule)
    sr = sub.add_parser("stack-remote", help="register the Kubernetes or Kubeflow stack of configs/stacks/")
    sr.add_argument("target", choices=["kubernetes", "kubeflow"])
    sr.add_argument("--root", default=".", help="repository root (where configs/ is)")
    sr.add_argument("--dry-run", action="store_true", help="validate and print the zenml commands, register nothing")
    sr.set_defaults(func=_cmd_stack_remote)
    cc = sub.add_parser("cluster-config", help="merge configs/cluster/<target>.yaml over a run config")
    cc.add_argument("config", help="run config, e.g. configs/paper.yaml or configs/schedule.yaml")
    cc.add_argument("--target", required=True, choices=["kubernetes", "kubeflow"])
    cc.add_argument("--pipeline", default="pipelines.fer_training", help="the pipeline the config is for")
    cc.add_argument("--root", default=".", help="repository root (where configs/ is)")
    cc.add_argument("-o", "--out", help="write here (default: print)")
    cc.set_defaults(func=_cmd_cluster_config)
    fr = sub.add_parser("fresh-config", help="a run config that trains from scratch: no cache, no resume state")
    fr.add_argument("config", help="run config, e.g. configs/cpu.yaml")
    fr.add_argument("-o", "--out", required=True, help="where to write the config with caching off")
    fr.add_argument("--resume-dir", help="resume folder to clear (default: the config's, else $FERKIT_RESUME_DIR)")
    fr.set_defaults(func=_cmd_fresh_config)
    tr = sub.add_parser("train", help="train without ZenML; data-parallel under torchrun")
    tr.add_argument("--config", required=True, help="pipeline config whose train_model step config to use")
    tr.add_argument("--data", default=None, help="data path (default: $FER2013_PATH)")
    tr.add_argument("--out", required=True, help="where rank 0 saves the trained checkpoint")
    tr.add_argument("--resume", help="resumable state file (written by rank 0 after every epoch)")
    tr.add_argument("--override", help='JSON of TrainConfig fields to override, e.g. \'{"epochs": 1}\'')
    tr.add_argument("--limit-per-class", type=int, help="read only the first N images of each class and split")
    tr.add_argument("--json", action="store_true", help="print each epoch's metrics as a JSON line")
    tr.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Like `make`, keep ZenML's state in the project (.ferkit/zenml) unless told otherwise.
    if "ZENML_CONFIG_PATH" not in os.environ:
        home = Path(os.environ.get("FERKIT_HOME", ".ferkit")).resolve() / "zenml"
        if home.is_dir() or args.command == "stack":
            os.environ["ZENML_CONFIG_PATH"] = str(home)
    from ferkit.data.errors import DataError
    from ferkit.inference.promotion import RegistryError

    try:
        return args.func(args)
    except (DataError, ModelNotFound, RegistryError) as exc:
        print(f"ferkit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
