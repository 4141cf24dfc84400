"""Plug-ins: user modules that register assigners, model families or backbones by name.

A plug-in is an importable module whose import calls the public decorators
(:func:`yolozoo.assigners.register_assigner`, :func:`yolozoo.models.families.register_family`, or
timm's ``timm.models.register_model`` for a backbone, as ``yolozoo.models.darknet`` does). It is
found three ways, all imported before a config is checked, so ``assigner.name=my_assigner`` works in runs and sweeps:

- the config key ``imports=[my_pkg.my_assigners]``;
- the environment variable ``YOLOZOO_IMPORTS=my_pkg.a,my_pkg.b``;
- installed packages' entry points in group ``yolozoo.assigners`` (or ``yolozoo.plugins``),
  e.g. in ``pyproject.toml``: ``[project.entry-points."yolozoo.assigners"] mine = "my_pkg.my_assigners"``.

Each module is imported once per process.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

ENV_VAR = "YOLOZOO_IMPORTS"
ENTRY_POINT_GROUPS = ("yolozoo.assigners", "yolozoo.plugins")
_loaded: set[str] = set()


class PluginError(ValueError):
    """A plug-in module that cannot be imported; the message names it and where it came from."""


def _import(name: str, origin: str) -> None:
    if name in _loaded:
        return
    try:
        importlib.import_module(name)
    except ImportError as e:
        raise PluginError(f"{origin}: cannot import plug-in module {name!r} ({e}); is it on PYTHONPATH?") from None
    _loaded.add(name)


def _load_entry_points() -> None:
    for group in ENTRY_POINT_GROUPS:
        for ep in entry_points(group=group):
            key = f"{group}:{ep.name}={ep.value}"
            if key in _loaded:
                continue
            try:
                ep.load()
            except Exception as e:
                raise PluginError(f"entry point {ep.name!r} ({group}) = {ep.value!r}: cannot load ({e})") from None
            _loaded.add(key)


def import_plugins(names: list[str] | None = None) -> None:
    """Import the modules ``names`` (the ``imports`` config key), ``$YOLOZOO_IMPORTS`` and the entry points."""
    for name in os.environ.get(ENV_VAR, "").split(","):
        if name.strip():
            _import(name.strip(), f"${ENV_VAR}")
    for name in names or []:
        _import(str(name).strip(), "imports")
    _load_entry_points()
