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
from dataclasses import dataclass
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
    """The lines of fenced shell blocks (`sh`, `bash`, `shell`, no language; of a `console` block only
    its `$ ` lines; a fence may be indented, as in a list; a trailing backslash joins the next line),
    and the inline code spans of the prose (one line each, wherever the paragraph wraps them)."""
    lines, prose, block, fence = [], [], None, None
    for line in text.splitlines():
        opening = re.match(r"^(\s*)```\s*([\w-]*)", line)
        if fence is None and opening:
            fence, language, block = opening.group(1), opening.group(2), []
        elif fence is not None and re.match(r"^\s*```\s*$", line):
            if language in ("", "sh", "bash", "shell", "console"):
                joined = re.sub(r"\\\n\s*", " ", "\n".join(block)).splitlines()
                lines += [x for x in joined if language != "console" or x.lstrip().startswith("$ ")]
            fence = None
        elif fence is not None:
            block.append(line.removeprefix(fence))
        else:
            prose.append(line)
    spans = re.findall(r"(?<!`)`([^`]+)`(?!`)", "\n".join(prose))  # a span may wrap, within its paragraph
    return lines + [" ".join(span.split()) for span in spans if "\n\n" not in span]


def _commands(line: str) -> list[list[str]]:
    """The commands of one line, each as words from its program on: prompts, comments, redirections,
    environment assignments and wrappers (env, nohup, setsid, time, .venv/bin/) taken off;
    `python -m ferkit.cli` and `torchrun ... -m ferkit.cli` read as `ferkit`; `<placeholders>` kept
    as one word; the alternatives of a usage line (`a \\| b`) kept as words."""
    line = re.sub(r"<[^>]*>", "PLACEHOLDER", line.replace("\\|", " ")).split(" #")[0]
    line = re.sub(r"\d*>>?(&\d+|\s*\S+)", " ", line)  # > file, 2>&1, >> log
    commands = []
    for part in re.split(r"&&|\|\||;|\||&|\(|\)", line):
        try:
            words = shlex.split(part.strip().removeprefix("$ "))
        except ValueError:  # an unbalanced quote in prose
            words = part.strip().removeprefix("$ ").split()
        while words and (re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]) or words[0] in ("env", "nohup", "setsid", "time")):
            words.pop(0)
        if words:
            words[0] = re.sub(r"^(\./)?\.venv/bin/", "", words[0])
        if words and words[0] in ("python", "python3", "torchrun") and "-m" in words:
            module = words.index("-m") + 1
            if module < len(words) and words[module] in ("ferkit", "ferkit.cli"):
                words = ["ferkit", *words[module + 1 :]]
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
    problems = [f"`{' '.join(path)}` has no option {option}" for option in _options(rest) if option not in known]
    return problems + _wrong_choices(parser, rest, " ".join(path))


def _wrong_choices(parser: argparse.ArgumentParser, words: list[str], command: str) -> list[str]:
    """Values the docs give an option (or a positional) that takes one of a few choices
    (`--format onnx`, `--tta multi_view`) and that are not among them; placeholders (`MODE`) pass."""
    by_option = {o: a for a in parser._actions for o in a.option_strings}
    positionals = [a for a in parser._actions if not a.option_strings]
    problems, position = [], 0
    for before, word in zip(["", *words], words):
        value = word.strip("[]{}(),")
        if not value or value.startswith("-") or value.isupper() or "PLACEHOLDER" in value or value == "...":
            continue
        action = by_option.get(before.strip("[]{}(),"))
        if action is None and before.strip("[]").startswith("-"):
            continue  # the value of an option without choices, or a flag's neighbour
        if action is None:  # a positional
            action = positionals[position] if position < len(positionals) else None
            position += 1
        if action is not None and action.choices and action.nargs in (None, "?") and value not in action.choices:
            problems.append(f"`{command}` {'/'.join(action.option_strings) or action.dest} takes one of "
                            f"{sorted(action.choices)}, not {value!r}")  # fmt: skip
    return problems


@dataclass(frozen=True)
class Rule:
    prerequisites: tuple[str, ...]
    recipe: str


@cache
def _makefile() -> tuple[dict[str, Rule], str]:
    """The Makefile's rules by target (`%` patterns as fnmatch `*`) and its text outside recipes
    (assignments, conditionals: what every target reads)."""
    rules: dict[str, tuple[tuple[str, ...], list[str]]] = {}
    outside: list[str] = []
    recipe: list[str] | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        rule = re.match(r"^([^\s#:=][^:=]*?)\s*:(?![=:])(.*)$", line)
        if line.startswith("\t") and recipe is not None:
            recipe.append(line)
        elif rule:
            prerequisites = tuple(rule.group(2).rsplit(":", 1)[-1].split())  # `a b: a-%: setup`: static pattern
            recipe = []
            rules.update({target.replace("%", "*"): (prerequisites, recipe) for target in rule.group(1).split()})
        else:
            outside.append(line)
            recipe = recipe if not line.strip() else None
    return {t: Rule(pre, "\n".join(lines)) for t, (pre, lines) in rules.items()}, "\n".join(outside)


def _reads(target: str, variable: str, rules: dict[str, Rule], seen: frozenset = frozenset()) -> bool:
    """Whether `target`'s recipe, or that of a prerequisite it makes first, reads `$(variable)`."""
    rule = next((r for t, r in rules.items() if fnmatch(target, t)), None)
    if rule is None or target in seen:
        return False
    return f"$({variable})" in rule.recipe or any(
        _reads(p, variable, rules, seen | {target}) for p in rule.prerequisites
    )


@cache
def _read_from_the_environment(variable: str) -> bool:
    """Whether ferkit's own code reads `variable` (make hands command-line variables to its recipes'
    environment: `make train FER2013_PATH=...` reaches the pipeline)."""
    sources = (
        path.read_text() for folder in ("ferkit", "steps", "pipelines") for path in (ROOT / folder).rglob("*.py")
    )
    return any(re.search(rf"[\"']{variable}[\"']", source) for source in sources)


def check_make(words: list[str]) -> list[str]:
    rules, everywhere = _makefile()
    targets = [w for w in words[1:] if "=" not in w and not w.startswith(("-", "[", "PLACEHOLDER", "..."))] or ["help"]
    problems = [f"the Makefile has no target {t!r}" for t in targets if not any(fnmatch(t, r) for r in rules)]
    for word in (w.strip("[]") for w in words[1:] if "=" in w):  # `make seeds [SEEDS=0,1,2]`: optional
        variable = word.split("=", 1)[0]
        read = f"$({variable})" in everywhere or any(_reads(t, variable, rules) for t in targets)
        if not (read or _read_from_the_environment(variable)):
            problems.append(f"`make {' '.join(targets)}` never reads {variable}")
    return problems


@cache
def _script_help(script: str) -> str:
    done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} --help failed:\n{done.stderr[-2000:]}"
    return done.stdout


def check_python(words: list[str]) -> list[str]:
    script = words[1]
    if script.startswith("-"):  # python -m ..., python -c ...: not a file of ours
        return []
    if not (ROOT / script).is_file():
        return [f"no script {script}"]
    if not _options(words[2:]):
        return []
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
            and "PLACEHOLDER" not in path and not (ROOT / path).is_file()]  # fmt: skip


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
        ("ferkit evaluate --model URI --tta multiview", "takes one of"),
        ("ferkit export --model URI --format onxx -o model.onnx", "takes one of"),
        ("ferkit stack-remote kubernets --dry-run", "takes one of"),
        ("make trian", "no target 'trian'"),
        ("make train BUDGT=42", "never reads BUDGT"),
        ("make train SEEDS=0", "`make train` never reads SEEDS"),  # `make seeds` does
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
    text = """Run `make train BUDGET=<minutes>` or

```yaml
steps: {make sure: this is not read}
```

```sh
FER2013_PATH=x nohup .venv/bin/ferkit compare SPEC \\
  --out DIR > log 2>&1 &  # in the background
```

1. In a list:

   ```bash
   env A=1 make seeds 2>&1 | tee seeds.log
   torchrun --nproc-per-node 2 -m ferkit.cli train --config C
   ```

```console
$ ferkit versions
ferkit train: not a command, its output
```
and `ferkit compare SPEC [--rerun \\| --dry-run]`, or `python -m
ferkit info PATH`.
"""
    commands = [" ".join(words) for line in _shell_lines(text) for words in _commands(line)]
    assert commands == [
        "ferkit compare SPEC --out DIR",
        "make seeds",
        "ferkit train --config C",
        "ferkit versions",
        "make train BUDGET=PLACEHOLDER",
        "ferkit compare SPEC [--rerun --dry-run]",
        "ferkit info PATH",
    ]
    assert _options(commands[5].split()) == ["--rerun", "--dry-run"]


def test_a_variable_is_read_by_the_target_or_by_ferkit_from_the_environment():
    assert not problems_of("make train CONFIG=configs/smoke.yaml FRESH=1")  # the target's own recipe
    assert not problems_of("make train FERKIT_HOME=/tmp/home")  # every target's (the Makefile's top)
    assert not problems_of("make setup PYTHON=python3.11")  # a prerequisite's recipe ($(STAMP))
    assert not problems_of("make train FER2013_PATH=/data/fer2013.zip")  # the environment ferkit reads
    assert problems_of("make seeds FRESH=1") == ["`make seeds` never reads FRESH"]
