"""Imports point one way (STYLE.md): ferkit <- steps <- pipelines <- CLI / Makefile.

Two kinds of check: every import statement in the source, read with `ast` (so an
import inside a function counts too), and what importing a module really loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LOWER = ("ferkit.data", "ferkit.models", "ferkit.metrics")  # nothing here imports the floor above
UPPER = ("ferkit.training", "ferkit.gan", "ferkit.quality", "ferkit.inference")
# The edges of the library that talk to ZenML or MLflow, always lazily from the outside.
EDGES = ("ferkit.cli", "ferkit.registry", "ferkit.cluster")
TOOLS = ("zenml", "mlflow")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of `path` names, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def crossings(
    folders: tuple[str, ...], importer_in: tuple[str, ...], forbidden: tuple[str, ...], except_in: tuple[str, ...] = ()
) -> list[str]:
    """'file imports name' for each import of a `forbidden` module by a module under `importer_in`
    (and not under `except_in`)."""
    found = []
    for folder in folders:
        for path in sources(folder):
            name = module_name(path)
            if not under(name, importer_in) or under(name, except_in):
                continue
            bad = sorted(n for n in imported_modules(path) if under(n, forbidden))
            found += [f"{path.relative_to(ROOT)} imports {name}" for name in bad]
    return found


class TestImportsPointOneWay:
    def test_the_library_never_imports_steps_or_pipelines(self):
        assert crossings(("ferkit",), ("ferkit",), ("steps", "pipelines")) == []

    def test_steps_never_import_the_command_line(self):
        assert crossings(("steps", "pipelines"), ("steps", "pipelines"), ("ferkit.cli",)) == []

    def test_pipelines_only_wire_steps(self):
        """The pipeline modules (not the package's name-lookup plumbing) import steps and zenml only."""
        pipelines = tuple(f"pipelines.{p.stem}" for p in (ROOT / "pipelines").glob("fer_*.py"))
        assert len(pipelines) == 4
        assert crossings(("pipelines",), pipelines, ("ferkit", "mlflow")) == []

    def test_the_lower_floor_never_imports_the_upper_one(self):
        assert crossings(("ferkit",), LOWER, UPPER + EDGES) == []

    def test_the_core_never_imports_zenml_or_mlflow(self):
        assert crossings(("ferkit",), ("ferkit",), TOOLS, except_in=EDGES) == []

    def test_the_checks_see_a_crossing(self, tmp_path):
        """The static check itself: a file with a function-level import of a step is found."""
        crossing = tmp_path / "crossing.py"
        crossing.write_text("def f():\n    from steps.context import TRACKER\n    import mlflow\n")
        assert {"steps.context", "steps.context.TRACKER", "mlflow"} <= imported_modules(crossing)


@pytest.mark.parametrize(
    "module",
    [
        "ferkit",
        "ferkit.data",
        "ferkit.models",
        "ferkit.models.views",
        "ferkit.training",
        "ferkit.metrics",
        "ferkit.quality",
        "ferkit.inference",
        "ferkit.inference.photos",
        "ferkit.retraining",
        "ferkit.comparison",
        "ferkit.scheduling",
        "ferkit.training.distributed",
        "ferkit.gan",
        "ferkit.gan.oversample",
        "ferkit.gan.quality",
        "ferkit.files",
        "ferkit.runtime",
        # the edges load zenml and mlflow only when a command or function needs them
        "ferkit.cli",
        "ferkit.cluster",
        "ferkit.registry",
        "ferkit.registry.store",
        "ferkit.registry.names",
        "ferkit.registry.decision",
    ],
)
def test_importing_loads_neither_zenml_nor_mlflow(module):
    code = (
        f"import sys, {module}; "
        "bad = [m for m in ('zenml', 'mlflow') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_command_line_starts_without_torch():
    code = (
        "import sys, ferkit.cli, ferkit.registry.decision; ferkit.cli.build_parser(); "  # errors map to exit codes
        "ferkit.cli._exit_code(ValueError()); sys.exit(1 if {'torch', 'sklearn'} & set(sys.modules) else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_reading_a_data_set_needs_no_torch(fer_zip):
    """`ferkit info` reads and summarises without torch: its memory is the data's, not a framework's."""
    code = (
        "import sys; from ferkit.cli import main; "
        f"code = main(['info', {str(fer_zip)!r}]); "
        "sys.exit(code or (9 if 'torch' in sys.modules else 0))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
