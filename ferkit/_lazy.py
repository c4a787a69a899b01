"""Names a package exports on first use, so a light import (labels, constants) stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], object], list[str]]:
    """A module `__getattr__` that imports each name's module when the name is first used, and `__all__`.

    `modules` maps a module path to the names the package takes from it.
    """
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home[name]), name)

    return __getattr__, sorted(home)
