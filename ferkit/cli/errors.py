"""Exit codes and the one-line errors of every `ferkit` command.

0  ok
1  the command ran and what it checks failed: the quality gate stopped the data,
   an image could not be read, a comparison run failed, the registry refused a move
2  usage: unknown command or option, a malformed value, config, policy or spec
   (invalid YAML, an unknown field, a wrong type)
3  input not found or unreadable: data, model, config file, champion, tracking store
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

OK, FAILED, USAGE, NOT_FOUND = 0, 1, 2, 3
T = TypeVar("T")


class CommandError(Exception):
    """A user mistake or missing input: one line for stderr and the exit code."""

    def __init__(self, message: str, code: int = USAGE):
        super().__init__(message)
        self.code = code


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The YAML mapping in `path`; a missing file exits 3, a malformed one 2, each naming the file (and line)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CommandError(f"{what} {path} does not exist", NOT_FOUND)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CommandError(f"{what} {path} cannot be read: {exc.strerror}", NOT_FOUND) from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{what} {path}: not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x})",
                           USAGE) from None  # fmt: skip
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise CommandError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}", USAGE) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CommandError(f"{path}: expected a mapping of fields, found a {type(data).__name__}", USAGE)
    return data


def validated(model: type[T], data: dict[str, Any], where: str) -> T:
    """`model(**data)`, a pydantic model; a validation error exits 2 naming `where` and the first bad field."""
    from pydantic import ValidationError

    try:
        return model(**data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CommandError(f"{where}: field '{field}': {first['msg']}{more}", USAGE) from None
    except TypeError as exc:
        raise CommandError(f"{where}: {exc}", USAGE) from None
