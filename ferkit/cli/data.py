"""ferkit info | validate: what a data set holds, and whether it passes the quality gate."""

from __future__ import annotations

import argparse
import json
import sys

from ferkit.cli.errors import FAILED, NOT_FOUND, OK, read_yaml, validated

DATA_HELP = "FER2013 zip, folder or CSV (default: $FER2013_PATH)"


def add_commands(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("info", help="read a FER2013 zip, folder or CSV and summarise it")
    info.add_argument("path", nargs="?", default=None, help=DATA_HELP)
    info.add_argument(
        "--on-bad-image", choices=["skip", "fail"], default="skip", help="an undecodable image is listed, or stops"
    )
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)
    validate = sub.add_parser("validate", help="run the data quality gate and print its report (exit 1: it stops)")
    validate.add_argument("path", nargs="?", default=None, help=DATA_HELP)
    validate.add_argument("--policy", help="YAML file of QualityPolicy fields (fail_on, thresholds, ...)")
    validate.add_argument("--json", action="store_true", help="print JSON counts and checks")
    validate.set_defaults(func=_validate)


def _info(args: argparse.Namespace) -> int:
    from ferkit.data import read_fer2013
    from ferkit.runtime import progress_disabled

    data = read_fer2013(args.path, on_bad_image=args.on_bad_image, progress=not (args.json or progress_disabled()))
    summary = data.summary()
    summary.pop("original_formats", None)
    if args.json:
        print(json.dumps(summary, indent=2))
        return OK
    print(f"{summary['source']} ({summary['source_format']}): {summary['images']} images")
    for split, count in summary["splits"].items():
        classes = ", ".join(f"{k} {v}" for k, v in summary["classes"][split].items())
        print(f"  {split:5s} {count:6d}  {classes}")
    conversions = ", ".join(f"{k} {v}" for k, v in sorted(summary["conversions"].items()))
    print(f"  converted to 48x48 grayscale: {summary['converted']}" + (f" ({conversions})" if conversions else ""))
    for split, missing in summary["missing_classes"].items():
        print(f"  {split}: no images of {', '.join(missing)}")
    print_unread(data.report)
    return OK


def print_unread(report, shown: int = 10) -> None:
    """The files skipped and the links refused or followed, each with its reason."""
    if report.bad_files:
        print(f"  unreadable, skipped: {len(report.bad_files)}")
        for name in report.bad_files[:shown]:
            print(f"    {name}: {report.bad_reasons.get(name, 'cannot be read')}")
    if report.refused_links:
        print(f"  symbolic links refused: {len(report.refused_links)}")
        for link, why in list(report.refused_links.items())[:shown]:
            print(f"    {link}: {why}")
    if report.followed_links:
        print(f"  symbolic links inside the data folder, read: {len(report.followed_links)}")


def _validate(args: argparse.Namespace) -> int:
    """Exit 0 when the gate passes (warnings allowed), 1 when a `fail_on` check failed, 3 when unreadable."""
    from ferkit.data import read_fer2013
    from ferkit.data.errors import DataError
    from ferkit.data.manifest import build_manifest
    from ferkit.quality import QualityPolicy, run_expectations
    from ferkit.runtime import progress_disabled

    policy = QualityPolicy()
    if args.policy:
        policy = validated(QualityPolicy, read_yaml(args.policy, "policy"), args.policy)
    try:
        data = read_fer2013(args.path, on_bad_image="skip", progress=not (args.json or progress_disabled()))
    except DataError as exc:
        if args.json:
            print(json.dumps({"passed": False, "readable": False, "error": str(exc)}, indent=2))
        else:
            print(f"ferkit validate: the data cannot be read: {exc}", file=sys.stderr)
        return NOT_FOUND
    report, _ = run_expectations(build_manifest(data), policy)
    unread = {k: getattr(data.report, k) for k in ("bad_files", "bad_reasons", "refused_links", "followed_links")}
    if args.json:
        checks = [c.model_dump() for c in report.checks]
        print(json.dumps({"source": str(data.report.source), "passed": report.passed, "readable": True,
                          **unread, **report.summary, "checks": checks}, indent=2))  # fmt: skip
    else:
        print(report.to_markdown())
        print_unread(data.report)
    return OK if report.passed else FAILED
