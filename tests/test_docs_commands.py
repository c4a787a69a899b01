"""Every command the manuals name exists as written: `ferkit` commands and their options, `make`
targets and the variables they read, the benchmark scripts and their options, the pipelines and
configs a `zenml pipeline run` names.

README's marked blocks also run (tests/test_readme.py); the commands checked here are the others,
in README's prose and in docs/: most train for an hour or need the real data, so they are checked
against the parsers and the Makefile that would take them rather than run.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

import pytest

from ferkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
MANUALS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PIPELINES = {path.stem for path in (ROOT / "pipelines").glob("fer_*.py")}
_PROGRAMS = ("ferkit", "make", "python", "python3", "zenml")
_OPTION = re.compile(r"^(--?[A-Za-z][\w-]*)")


# --- finding the commands -------------------------------------------------------------------------


def _shell_lines(text: str) -> list[str]:
    """The lines of fenced shell blocks (a trailing backslash joins the next), and inline code spans
    (one line each, wherever the paragraph wraps them)."""
    lines = []
    for block in re.finditer(r"^```(?:sh|bash|console|shell)?\n(.*?)^```", text, re.S | re.M):
        lines += re.sub(r"\\\n\s*", " ", block.group(1)).splitlines()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans = re.findall(r"(?<!`)`([^`]+)`(?!`)", prose)  # a span may wrap, within its paragraph
    return lines + [" ".join(span.split()) for span in spans if "\n\n" not in span]


def _commands(line: str) -> list[list[str]]:
    """The commands of one line, each as words from its program on: prompts, comments, environment
    assignments and wrappers (nohup, setsid, time, .venv/bin/) taken off, `<placeholders>` kept
    as one word, the alternatives of a usage line (`a \\| b`) kept as words."""
    line = re.sub(r"<[^>]*>", "PLACEHOLDER", line.replace("\\|", " ")).split(" #")[0]
    commands = []
    for part in re.split(r"&&|\|\||;|\||\(|\)|>", line):
        try:
            words = shlex.split(part.strip().removeprefix("$ "))
        except ValueError:  # an unbalanced quote in prose
            words = part.strip().removeprefix("$ ").split()
        while words and (re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]) or words[0] in ("nohup", "setsid", "time")):
            words.pop(0)
        if words:
            words[0] = re.sub(r"^(\./)?\.venv/bin/", "", words[0])
        if words and words[0] in _PROGRAMS and len(words) > 1:
            commands.append(words)
    return commands


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for each distinct command the manuals name."""
    found = {}
    for manual in MANUALS:
        for line in _shell_lines(manual.read_text()):
            for words in _commands(line):
                found.setdefault(shlex.join(words), manual.name)
    return sorted((where, command) for command, where in found.items())


def _options(words: list[str]) -> list[str]:
    """The options among `words` (`[--json`, `--out=DIR` and `--only NAME...` give their option)."""
    options = []
    for word in words:
        match = _OPTION.match(word.strip("[]{}(),"))
        if match:
            options.append(match.group(1))
    return options


# --- checking them ----------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def check_ferkit(words: list[str]) -> list[str]:
    parser, path, rest = build_parser(), ["ferkit"], words[1:]
    while rest and not rest[0].startswith("-") and _subcommands(parser):
        if rest[0].isupper():  # `ferkit COMMAND --help`: a placeholder for any command
            return []
        if rest[0] not in _subcommands(parser):
            return [f"`{' '.join(path)}` has no command {rest[0]!r} (it has {sorted(_subcommands(parser))})"]
        parser = _subcommands(parser)[rest[0]]
        path.append(rest.pop(0))
    known = _option_strings(parser)
    return [f"`{' '.join(path)}` has no option {option}" for option in _options(rest) if option not in known]


@cache
def _makefile() -> tuple[list[str], str]:
    """The Makefile's targets (`%` patterns as fnmatch `*`) and its text."""
    text = (ROOT / "Makefile").read_text()
    targets = []
    for match in re.finditer(r"^([\w.%$() -]+?)\s*:(?![=:])", text, re.M):
        targets += [name.replace("%", "*") for name in match.group(1).split()]
    return targets, text


def check_make(words: list[str]) -> list[str]:
    targets, text = _makefile()
    problems = []
    for word in (w.strip("[]") for w in words[1:]):  # `make seeds [SEEDS=0,1,2]`: optional
        if word.startswith("-") or word in ("PLACEHOLDER", "..."):
            continue
        if "=" in word:
            variable = word.split("=", 1)[0]
            if f"$({variable})" not in text:
                problems.append(f"the Makefile never reads {variable} (`make {' '.join(words[1:])}`)")
        elif not any(fnmatch(word, target) for target in targets):
            problems.append(f"the Makefile has no target {word!r}")
    return problems


@cache
def _script_help(script: str) -> str:
    done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script} --help failed:\n{done.stderr[-2000:]}"
    return done.stdout


def check_python(words: list[str]) -> list[str]:
    script = words[1]
    if script.startswith("-"):  # python -m ..., python -c ...: not a file of ours
        return []
    if not (ROOT / script).is_file():
        return [f"no script {script}"]
    usage = _script_help(script)
    named = set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", usage))  # whole options: --seeds is not --seeds-file
    return [f"{script} has no option {option}" for option in _options(words[2:]) if option not in named]


def check_zenml(words: list[str]) -> list[str]:
    if words[1:3] != ["pipeline", "run"] or len(words) < 4 or words[3] == "PLACEHOLDER":
        return []  # other zenml commands are ZenML's own
    problems = []
    name = words[3].removeprefix("pipelines.")
    if name not in PIPELINES:
        problems.append(f"no pipeline {words[3]!r} (pipelines/ has {sorted(PIPELINES)})")
    return problems  # its config: missing_configs


CHECKS = {"ferkit": check_ferkit, "make": check_make, "python": check_python, "python3": check_python,
          "zenml": check_zenml}  # fmt: skip


def missing_configs(words: list[str]) -> list[str]:
    """The configs a command reads (`CONFIG=configs/x.yaml`, `-c configs/x.yaml`) that do not exist."""
    paths = (word.split("=", 1)[-1] for word in words)
    return [f"no config {path}" for path in paths if re.fullmatch(r"configs/[\w./-]+\.yaml", path)
            and not (ROOT / path).is_file()]  # fmt: skip


def problems_of(command: str) -> list[str]:
    words = shlex.split(command)
    return CHECKS[words[0]](words) + missing_configs(words)


# --- the tests ---------------------------------------------------------------------------------------


def test_the_manuals_name_commands_of_every_kind():
    programs = {shlex.split(command)[0] for _, command in documented_commands()}
    assert programs >= {"ferkit", "make", "python", "zenml"}
    assert len(documented_commands()) > 60


@pytest.mark.parametrize(("where", "command"), documented_commands())
def test_a_documented_command_exists_as_written(where, command):
    assert not problems_of(command), f"{where}: `{command}`: {problems_of(command)}"


@pytest.mark.parametrize(
    ("command", "wrong"),
    [
        ("ferkit evaluate --model URI --no-such-flag", "has no option --no-such-flag"),
        ("ferkit evalute --model URI", "has no command 'evalute'"),
        ("ferkit schedule instal --cron EXPR", "has no command 'instal'"),
        ("ferkit schedule install --cron EXPR --every 5", "`ferkit schedule install` has no option --every"),
        ("make trian", "no target 'trian'"),
        ("make train BUDGT=42", "never reads BUDGT"),
        ("python tests/benchmarks/bench_seeds.py --score-olny", "has no option --score-olny"),
        ("python tests/benchmarks/bench_seeds.py --score", "has no option --score"),  # only --score-only
        ("python tests/benchmarks/bench_nothing.py", "no script"),
        ("zenml pipeline run fer_trainng -c configs/smoke.yaml", "no pipeline 'fer_trainng'"),
        ("zenml pipeline run pipelines.fer_training -c configs/smoek.yaml", "no config configs/smoek.yaml"),
        ("make train CONFIG=configs/smoek.yaml", "no config configs/smoek.yaml"),
        ("ferkit budget-config configs/cpus.yaml --minutes 40 -o x.yaml", "no config configs/cpus.yaml"),
    ],
)
def test_a_command_that_does_not_exist_is_caught(command, wrong):
    assert any(wrong in problem for problem in problems_of(command)), problems_of(command)


def test_commands_are_found_in_blocks_prose_and_usage_lines():
    text = (
        "Run `make train BUDGET=<minutes>` or\n\n```sh\nFER2013_PATH=x nohup .venv/bin/ferkit compare SPEC \\\n"
        "  --out DIR > log &  # in the background\n```\nand `ferkit compare SPEC [--rerun \\| --dry-run]`.\n"
    )
    commands = [" ".join(words) for line in _shell_lines(text) for words in _commands(line)]
    assert commands == [
        "ferkit compare SPEC --out DIR",
        "make train BUDGET=PLACEHOLDER",
        "ferkit compare SPEC [--rerun --dry-run]",
    ]
    assert _options(commands[2].split()) == ["--rerun", "--dry-run"]
