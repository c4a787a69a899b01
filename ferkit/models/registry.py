"""A name -> builder registry, so YAML can name an architecture."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorator


def available_models() -> list[str]:
    return sorted(_BUILDERS)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture with keyword arguments from config."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}")
    return _BUILDERS[name](**kwargs)
