"""The error messages README's Troubleshooting quotes are the ones the code prints, so a reader
who searches the manual for what the terminal said finds it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def troubleshooting_messages() -> list[str]:
    """The bold quoted messages (**`...`**) of README's Troubleshooting section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    return [" ".join(m.split()) for m in re.findall(r"\*\*`([^`]+)`\*\*", section)]


def fragments(message: str) -> list[str]:
    """The literal parts of a quoted message: `...`, quoted values ('default') and a leading count
    (`N bad row(s)`) stand for what the code fills in."""
    parts = re.split(r"\.\.\.|'[^']*'|^N ", message)
    return [part.strip() for part in parts if len(part.strip()) >= 4]


def source_text() -> str:
    files = [p for folder in ("ferkit", "steps", "pipelines") for p in (ROOT / folder).rglob("*.py")]
    return " ".join(" ".join(path.read_text().split()) for path in files)


def test_troubleshooting_quotes_messages():
    assert len(troubleshooting_messages()) >= 6
    assert fragments("the active ZenML stack 'default' has no experiment tracker") == [
        "the active ZenML stack",
        "has no experiment tracker",
    ]
    assert fragments("N bad row(s)") == ["bad row(s)"]
    assert "no data path given" not in source_text()  # what README once quoted: the code says "No FER2013 ..."


def test_every_quoted_message_is_one_the_code_prints():
    code = source_text()
    missing = [(m, f) for m in troubleshooting_messages() for f in fragments(m) if f not in code]
    assert not missing, f"README's Troubleshooting quotes words the code never prints: {missing}"
