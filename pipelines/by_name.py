"""`zenml pipeline run fer_training`: the pipelines importable by their bare names.

ZenML's CLI imports a dot-less source as a module and accepts only a `Pipeline` object
(`zenml/cli/pipeline.py`, `_import_pipeline`). This finder, last on `sys.meta_path`,
answers the names in `PIPELINES` with a module whose import yields the pipeline itself
(`pipelines.<name>.<name>`), so the literal command works; `pipelines.<name>` keeps working.
`make setup` installs it, with `ferkit.home`'s defaults, through a `.pth` file in the
virtual environment: see `startup`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

PIPELINES = ("fer_training", "fer_retraining", "fer_batch_inference", "fer_data_check")
PTH_FILE = "ferkit_project.pth"
PTH_LINE = (
    'import importlib.util as _u; _u.find_spec("pipelines") is not None and '
    '__import__("pipelines.by_name").by_name.startup()\n'
)


class _PipelineLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module; exec_module replaces it

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        # importlib returns what sys.modules holds after loading: the Pipeline object.
        sys.modules[name] = getattr(importlib.import_module(f"pipelines.{name}"), name)


class PipelineFinder(importlib.abc.MetaPathFinder):
    """Finds `fer_training` & co. when no real module of that name exists."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PIPELINES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _PipelineLoader())


def install() -> None:
    """Add the finder at the end of `sys.meta_path` (once)."""
    if not any(isinstance(finder, PipelineFinder) for finder in sys.meta_path):
        sys.meta_path.append(PipelineFinder())


def startup() -> None:
    """What the `.pth` file runs at interpreter start: the project's home and the pipeline names."""
    from ferkit.home import apply_defaults

    apply_defaults()
    install()


def write_pth() -> str:
    """Write the `.pth` file into this interpreter's site-packages; returns its path."""
    import sysconfig
    from pathlib import Path

    path = Path(sysconfig.get_paths()["purelib"]) / PTH_FILE
    path.write_text(PTH_LINE)
    return str(path)


if __name__ == "__main__":
    print(f"wrote {write_pth()}")
