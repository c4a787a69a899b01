"""ferkit stack | tracking-uri: the local ZenML stack and its MLflow store."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    stack = sub.add_parser("stack", help="register and activate the local ZenML + MLflow stack")
    stack.add_argument("--root", default=".", help="repository root for `zenml init`")
    stack.set_defaults(func=_stack)
    uri = sub.add_parser("tracking-uri", help="print the active stack's MLflow tracking URI")
    uri.set_defaults(func=_tracking_uri)


def _stack(args: argparse.Namespace) -> int:
    from ferkit.registry.stack import record_tracking_uri, setup_local_stack, tracking_uri

    names = setup_local_stack(args.root)
    record_tracking_uri()
    print(
        f"active stack: {names['stack']} (experiment tracker {names['experiment_tracker']}, "
        f"model registry {names['model_registry']})"
    )
    print(f"MLflow tracking URI: {tracking_uri()}")
    return 0


def _tracking_uri(args: argparse.Namespace) -> int:
    from ferkit.registry.stack import tracking_uri

    print(tracking_uri())
    return 0
