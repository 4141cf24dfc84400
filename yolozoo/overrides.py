"""Overrides as ``key=value`` text, and the one order in which a sweep point's or search trial's layers apply.

:func:`layered_overrides` builds the overrides :func:`yolozoo.config.load_config` takes for a point or
trial; load_config's own layers are dataclass defaults < preset < ``config=FILE`` < these overrides.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import yaml

from .config import PRESET_DIR, ConfigError, default_value, read_overrides_file

# A point (and a search trial) does the work its config names. The default run's own settings (the keys of
# yolozoo/presets/default.yaml: its time budget, which would fit each point's epochs to the machine, and its
# batch) are set back to the dataclass defaults, unless the sweep's base, an axis, the command line or its
# config=FILE sets them. Nor is the layout timed at start-up: the published records ran channels_last, and a
# layout chosen by timing could change a point's numbers in the last bits from one worker to the next.
FIXED_WORK = {"trainer.channels_last": True}


def override_text(value: Any) -> str:
    """A YAML value as ``key=value`` text that parses back to the same value."""
    if isinstance(value, str):
        # quote strings YAML would read as something else ("false", "1e3"), so they stay strings
        return value if isinstance(yaml.safe_load(value or "''"), str) else json.dumps(value)
    return json.dumps(value)  # null, true/false, numbers, [lists] are all valid YAML


def format_overrides(overrides: dict[str, Any]) -> dict[str, str]:
    """Overrides as ``load_config`` takes them (text, like the command line)."""
    return {k: override_text(v) for k, v in overrides.items()}


def preset_keys(preset: str) -> set[str]:
    """Dotted keys the preset file sets (none for an unknown preset: load_config reports that)."""
    path = PRESET_DIR / f"{preset}.yaml"
    return set(read_overrides_file(path)) if path.is_file() else set()


@functools.cache
def default_run_reset() -> dict[str, Any]:
    """The default preset's keys at their dataclass defaults (read once: every point and trial resolves them)."""
    return {k: default_value(k) for k in preset_keys("default")}


def config_file_overrides(cli: dict[str, str]) -> dict[str, Any]:
    """The overrides in the command line's ``config=FILE``, if any (a bad file is reported by load_config)."""
    if not cli.get("config"):
        return {}
    try:
        return read_overrides_file(cli["config"])
    except ConfigError:
        return {}


def layered_overrides(base: dict[str, Any], varied: dict[str, Any], cli: dict[str, str]) -> dict[str, str]:
    """The ``key=value`` overrides of one sweep point or search trial, in rising order:

    the fixed work (:data:`FIXED_WORK`, and the default preset's keys at their dataclass defaults) < the study's
    ``base`` < ``varied`` (a point's axes, a trial's sampled values) < the command line. ``base`` holds the
    study's defaults for the CPU / digits setting, so a chosen preset (``preset=voc``; from the command line, its
    ``config=FILE``, else ``base`` or the axes) and a ``config=FILE`` outrank it and the fixed work: a key either
    sets is left out of both.
    """
    from_file = config_file_overrides(dict(cli))
    merged = {**base, **varied}
    preset = str(cli.get("preset") or from_file.get("preset") or merged.get("preset", "default"))
    covered = (set() if preset == "default" else preset_keys(preset)) | set(from_file)
    fixed = {k: v for k, v in {**default_run_reset(), **FIXED_WORK}.items() if k not in covered}
    kept = {k: v for k, v in base.items() if k not in covered}
    return {**format_overrides(fixed), **format_overrides(kept), **format_overrides(dict(varied)), **dict(cli)}


__all__ = ["FIXED_WORK", "format_overrides", "layered_overrides", "override_text", "preset_keys"]
