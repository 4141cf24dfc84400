"""Name -> builder registries (assigners, model families, datasets), timm-style; backbones are timm's own.

``create`` raises on an unknown name listing the valid ones, and on an unknown keyword
naming it and listing the builder's valid keywords, so a typo in a config fails loudly.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable


def did_you_mean(name: str, valid: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid`` to ``name`` (difflib, else a prefix), or ``""``."""
    name = str(name)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6) or [
        v for v in valid if len(min(v, name, key=len)) >= 3 and (name.startswith(v) or v.startswith(name))][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


class UnknownNameError(KeyError):
    """An unknown registry name or option; ``str()`` is the plain message."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable] = {}

    def register(self, name: str):
        """Decorator registering a class or function under ``name``."""

        def wrap(obj):
            if self._items.get(name, obj) is not obj:  # the same object again (a module imported twice) is fine
                raise ValueError(f"{self.kind} {name!r} registered twice (first by {self._items[name].__module__})")
            self._items[name] = obj
            return obj

        return wrap

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> Callable:
        if name not in self._items:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"
                                   f"{did_you_mean(name, self.names())}")
        return self._items[name]

    def options(self, name: str) -> list[str]:
        """Keyword arguments the builder registered as ``name`` accepts."""
        params = inspect.signature(self.get(name)).parameters.values()
        return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def check_options(self, name: str, options: dict) -> None:
        valid = self.options(name)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise UnknownNameError(
                f"{self.kind} {name!r} has no option {unknown[0]!r}; valid: {', '.join(valid) or '(none)'}"
                f"{did_you_mean(unknown[0], valid)}"
            )

    def create(self, name: str, *args, **kwargs):
        self.check_options(name, kwargs)
        return self.get(name)(*args, **kwargs)
