"""`ferkit` command line: argument handling only; the work happens in the library.

One module per command group, each adding its sub-commands to the parser:

    stack      ferkit stack | tracking-uri
    data       ferkit info | validate
    model      ferkit evaluate | predict
    training   ferkit train | fresh-config | compare
    registry   ferkit promote | rollback | versions
    schedule   ferkit schedule install | list | remove
    cluster    ferkit stack-remote | cluster-config

Commands import what they need when they run, so `ferkit --help` starts without
torch, zenml or mlflow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ferkit.cli import cluster, data, model, registry, schedule, stack, training

GROUPS = (stack, data, model, training, registry, schedule, cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="FER2013 emotion-recognition toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Like `make`, keep ZenML's state in the project (.ferkit/zenml) unless told otherwise.
    if "ZENML_CONFIG_PATH" not in os.environ:
        home = Path(os.environ.get("FERKIT_HOME", ".ferkit")).resolve() / "zenml"
        if home.is_dir() or args.command == "stack":
            os.environ["ZENML_CONFIG_PATH"] = str(home)
    from ferkit.data.errors import DataError
    from ferkit.registry.decision import RegistryError

    try:
        return args.func(args)
    except (DataError, RegistryError) as exc:
        print(f"ferkit: {exc}", file=sys.stderr)
        return 2
