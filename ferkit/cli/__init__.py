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
torch, zenml or mlflow. Every mistake ends in one line and an exit code of
`ferkit.cli.errors` (0 ok, 1 check failed, 2 usage, 3 input not found or unreadable).
"""

from __future__ import annotations

import argparse
import sys

from ferkit import __version__
from ferkit.cli import cluster, data, model, registry, schedule, stack, training
from ferkit.cli.errors import FAILED, NOT_FOUND, USAGE, CommandError
from ferkit.home import apply_defaults

GROUPS = (stack, data, model, training, registry, schedule, cluster)
EPILOG = "exit codes: 0 ok, 1 a check failed, 2 usage error, 3 input not found or unreadable, or output unwritable"


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends with the option's default, unless there is none or the help names it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every sub-command's help shows the defaults of its options."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.formatter_class = _DefaultsFormatter
                sub.epilog = sub.epilog or EPILOG
                _show_defaults(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="FER2013 emotion-recognition toolkit", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    _show_defaults(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name of undecodable bytes prints escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)  # usage errors exit 2 here
    apply_defaults()  # the project's ZenML home, wherever the command runs from
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("ferkit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every known mistake becomes one line and its code
        code = _exit_code(exc)
        if code is None:
            raise
        print(f"ferkit {args.command}: {exc}", file=sys.stderr)
        return code


def _exit_code(exc: Exception) -> int | None:
    """The exit code of a known failure; None for a bug (which keeps its traceback)."""
    from ferkit.data.errors import DataError
    from ferkit.registry.decision import PromotionError, RegistryError

    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, PromotionError):
        return FAILED
    if isinstance(exc, (DataError, RegistryError, FileNotFoundError)):
        return NOT_FOUND
    if isinstance(exc, OSError) and exc.filename is not None:  # a path given that cannot be read or written
        return NOT_FOUND
    if isinstance(exc, ValueError) and type(exc).__module__.startswith("ferkit"):
        return USAGE
    return None
