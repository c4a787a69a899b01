"""`ferkit` command line: the one edge of the library that may import zenml or mlflow (lazily).

    ferkit stack          register and activate the local ZenML stack `fer_local`
    ferkit tracking-uri   print the MLflow tracking URI of the active stack
    ferkit info PATH      read a FER2013 zip, folder or CSV and print what it holds
    ferkit validate PATH  run the data quality gate on it and print the report
"""

from __future__ import annotations

import argparse
import json
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ferkit.data.errors import DataError

    try:
        return args.func(args)
    except DataError as exc:
        print(f"ferkit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
