"""Cron expressions and the crontab entries ferkit owns.

ZenML's local orchestrator cannot run schedules, so on one machine `ferkit
schedule` writes a crontab line per schedule. ferkit only ever touches lines
it marked (`# ferkit-schedule:<name>`); everything else in the crontab is
kept byte for byte. The crontab is the user's (`crontab -l` / `crontab -`)
unless `FERKIT_CRONTAB_FILE` names a plain file.

cron(8) reads a line's command up to the first unescaped `%` (the rest becomes
standard input) and ends it at the newline, so ferkit escapes `%` and refuses
newlines, carriage returns and NUL bytes in everything that enters a line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ferkit.files import atomic_write_text

CRONTAB_FILE_ENV = "FERKIT_CRONTAB_FILE"
MARKER = "# ferkit-schedule:"
_CONTROL = {"\n": "a newline", "\r": "a carriage return", "\0": "a NUL byte"}

# field name, lowest, highest, names allowed in place of numbers
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
        },
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}),
)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CronError(ValueError):
    """A cron expression, schedule name or crontab that ferkit cannot use; the message says why."""


def refuse_control_characters(value: str, what: str) -> str:
    """`value` unchanged, or a CronError naming `what` when it holds a character that would split a crontab line."""
    for char, name in _CONTROL.items():
        if char in value:
            raise CronError(f"{what} {value!r} contains {name}, which would break the crontab line")
    return value


def escape_percent(command: str) -> str:
    """cron turns an unescaped `%` into a newline and sends the rest to standard input: escape each one."""
    return command.replace("%", "\\%")


def unescape_percent(command: str) -> str:
    return command.replace("\\%", "%")


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    number = names.get(text.lower()) if not text.isdigit() else int(text)
    if number is None:
        raise CronError(f"{field}: {text!r} is not a number" + (f" or one of {sorted(names)}" if names else ""))
    if not low <= number <= high:
        raise CronError(f"{field}: {number} is outside {low}-{high}")
    return number


def _check_field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> None:
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty entry in {text!r}")
        base, _, step = part.partition("/")
        if step:
            if not step.isdigit() or int(step) == 0:
                raise CronError(f"{field}: step {step!r} in {part!r} must be a positive whole number")
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        first = _value(start, field, low, high, names)
        if dash:
            last = _value(end, field, low, high, names)
            if last < first:
                raise CronError(f"{field}: range {base!r} runs backwards")
        elif step:
            raise CronError(f"{field}: a step needs a range or '*', got {part!r}")


def validate_cron(expression: str) -> str:
    """The expression, normalised (macros expanded), or a `CronError` naming the field and the reason."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() == "@reboot":
            raise CronError("@reboot is not a schedule (it runs once per boot); use a time-based expression")
        if text.lower() not in MACROS:
            raise CronError(f"unknown macro {text!r}; expected one of {sorted(MACROS)}")
        return MACROS[text.lower()]
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; cron needs 5: minute hour day-of-month month day-of-week"
        )
    for value, (field, low, high, names) in zip(fields, _FIELDS):
        _check_field(value, field, low, high, names)
    return text


@dataclass(frozen=True)
class CronJob:
    name: str  # unique among ferkit's schedules
    cron: str  # validated five-field expression
    command: str  # shell command the line runs

    def line(self) -> str:
        """The crontab line: the command with `%` escaped, then ferkit's marker (a shell comment)."""
        refuse_control_characters(self.command, f"schedule {self.name!r}: the command")
        return f"{self.cron} {escape_percent(self.command)} {MARKER}{self.name}"

    @classmethod
    def parse(cls, line: str) -> CronJob | None:
        if MARKER not in line:
            return None
        body, _, name = line.rpartition(MARKER)
        fields = body.split()
        return cls(name=name.strip(), cron=" ".join(fields[:5]), command=unescape_percent(" ".join(fields[5:])))

    def next_run(self, after: datetime | None = None) -> datetime:
        """When cron runs this job next, after `after` (default: now, local time)."""
        from croniter import croniter

        return croniter(self.cron, after or datetime.now()).get_next(datetime)


class Crontab:
    """Read and write the crontab, touching only ferkit's lines; every write is all-or-nothing."""

    def __init__(self, file: str | os.PathLike | None = None):
        configured = file or os.environ.get(CRONTAB_FILE_ENV)
        self.file = Path(configured) if configured else None

    def _crontab(self, *args: str) -> list[str]:
        binary = shutil.which("crontab")
        if binary is None:
            raise CronError(
                f"no `crontab` command on this machine: install cron, or set {CRONTAB_FILE_ENV} "
                "to a file that your scheduler reads"
            )
        return [binary, *args]

    def _read(self) -> list[str]:
        if self.file is not None:
            return self.file.read_text().splitlines() if self.file.exists() else []
        result = subprocess.run(self._crontab("-l"), capture_output=True, text=True)
        if result.returncode != 0:
            if "no crontab" in result.stderr.lower():
                return []
            raise CronError(f"crontab -l failed: {result.stderr.strip()}")
        return result.stdout.splitlines()

    def _write(self, lines: list[str]) -> None:
        text = "\n".join(lines) + ("\n" if lines else "")
        if self.file is not None:
            atomic_write_text(self.file, text)
            return
        result = subprocess.run(self._crontab("-"), input=text, capture_output=True, text=True)
        if result.returncode != 0:
            raise CronError(f"crontab refused the new table: {result.stderr.strip()}")

    def jobs(self) -> list[CronJob]:
        return [job for job in map(CronJob.parse, self._read()) if job is not None]

    def install(self, job: CronJob, replace: bool = False, prepare: Callable[[], object] | None = None) -> None:
        """Add `job`; an existing schedule of that name is an error unless `replace`.

        `prepare` runs after every check and before the table is written (the job's script).
        """
        if not NAME_PATTERN.match(job.name):
            raise CronError(f"schedule name {job.name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        validate_cron(job.cron)
        lines = self._read()
        existing = [i for i, line in enumerate(lines) if (CronJob.parse(line) or CronJob("", "", "")).name == job.name]
        if existing and not replace:
            raise CronError(f"a schedule named {job.name!r} exists; remove it first or pass --replace")
        lines = [line for i, line in enumerate(lines) if i not in existing] + [job.line()]
        if prepare is not None:
            prepare()
        self._write(lines)

    def remove(self, name: str) -> CronJob:
        lines = self._read()
        keep, removed = [], None
        for line in lines:
            job = CronJob.parse(line)
            if job is not None and job.name == name:
                removed = job
            else:
                keep.append(line)
        if removed is None:
            names = [j.name for j in map(CronJob.parse, lines) if j is not None]
            raise CronError(f"no ferkit schedule named {name!r}; installed: {names or 'none'}")
        self._write(keep)
        return removed
