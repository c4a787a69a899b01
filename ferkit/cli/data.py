"""ferkit info | validate: what a data set holds, and whether it passes the quality gate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("info", help="read a FER2013 zip, folder or CSV and summarise it")
    info.add_argument("path", nargs="?", default=None, help="data path (default: $FER2013_PATH)")
    info.add_argument("--on-bad-image", choices=["skip", "fail"], default="skip")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)
    validate = sub.add_parser("validate", help="run the data quality gate and print its report")
    validate.add_argument("path", nargs="?", default=None, help="data path (default: $FER2013_PATH)")
    validate.add_argument("--policy", help="YAML file with QualityPolicy fields (fail_on, thresholds, ...)")
    validate.add_argument("--json", action="store_true", help="print JSON counts and checks")
    validate.set_defaults(func=_validate)


def _info(args: argparse.Namespace) -> int:
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


def _validate(args: argparse.Namespace) -> int:
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
        print(
            json.dumps(
                {
                    "source": str(data.report.source),
                    "passed": report.passed,
                    "readable": True,
                    "bad_files": data.report.bad_files,
                    **report.summary,
                    "checks": [c.model_dump() for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        print(report.to_markdown())
        if data.report.bad_files:
            print(f"undecodable files skipped: {', '.join(data.report.bad_files[:10])}")
    return 0 if report.passed else 1
