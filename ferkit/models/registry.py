"""Name -> builder registries, so YAML can name an architecture or a backbone."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from torch import nn

T = TypeVar("T")
# Importing these modules registers their architectures.
_ARCHITECTURE_MODULES = ("ferkit.models.cnn", "ferkit.models.hybrid")


class Registry(Generic[T]):
    """Builders by name: `@registry.register("name")` adds one, `registry.build("name", ...)` calls it."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind, self.modules = kind, modules  # modules: imported before a lookup, so they register
        self.builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self.builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self.builders[name] = builder
            return builder

        return decorator

    def names(self) -> list[str]:
        for module in self.modules:
            importlib.import_module(module)
        return sorted(self.builders)

    def build(self, name: str, *args, **kwargs) -> T:
        if name not in self.names():
            raise ValueError(f"unknown {self.kind} {name!r}; available: {self.names()}")
        return self.builders[name](*args, **kwargs)


MODELS: Registry[nn.Module] = Registry("model", _ARCHITECTURE_MODULES)
register_model = MODELS.register
available_models = MODELS.names


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture with keyword arguments from config."""
    return MODELS.build(name, **kwargs)
