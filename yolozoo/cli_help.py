"""``--help`` for every entry point, generated from the config dataclasses (never written by hand).

Each config key's default comes from the dataclass, and its one-line meaning from the
``# comment`` after the field in :mod:`yolozoo.config` (or :mod:`yolozoo.pretrain`; or the comment lines right above
it), read with :mod:`ast`, so the help cannot drift from the config.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
from dataclasses import MISSING

from . import config as config_module


@dataclasses.dataclass
class KeyHelp:
    key: str
    default: object
    meaning: str


def _comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` for the dataclass ``cls``, read from its module's source."""
    lines = inspect.getsource(sys.modules[cls.__module__]).splitlines()
    (node,) = [n for n in ast.parse("\n".join(lines)).body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    out = {}
    for stmt in node.body:
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        line = lines[stmt.lineno - 1]
        comment = line.split("  # ", 1)[1].strip() if "  # " in line else ""
        if not comment:  # the comment block right above the field
            above, i = [], stmt.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#"):
                above.insert(0, lines[i].strip().lstrip("#").strip())
                i -= 1
            comment = " ".join(above)
        out[stmt.target.id] = comment
    return out


def _default(f: dataclasses.Field) -> object:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def config_keys(cls: type = config_module.Config, prefix: str = "") -> list[KeyHelp]:
    """Every ``key=value`` key of ``cls`` (nested dataclasses flattened as ``a.b``) with its default and meaning."""
    comments = _comments(cls)
    keys = []
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            keys += config_keys(type(default), f"{prefix}{f.name}.")
        else:
            keys.append(KeyHelp(f"{prefix}{f.name}", default, comments.get(f.name, "")))
    return keys


def show(value: object) -> str:
    """A value as a command line or a table shows it: ``null``, ``true``, ``0.75``, ``resnet18``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def format_keys(keys: list[KeyHelp]) -> str:
    """One line per key: ``key=default  meaning``."""
    width = min(max(len(f"{k.key}={show(k.default)}") for k in keys), 44)
    return "\n".join(f"  {f'{k.key}={show(k.default)}':<{width}}  {k.meaning}".rstrip() for k in keys)


def help_text(doc: str, own: list[KeyHelp] | None = None, with_config: bool = True) -> str:
    """A script's ``--help``: its docstring, its own keys, then the config keys (defaults before any preset)."""
    parts = [inspect.cleandoc(doc or "")]
    if own:
        parts.append("Options:\n" + format_keys(own))
    if with_config:
        parts.append("Config keys (key=value; defaults before the preset's, see yolozoo/presets/):\n"
                     + format_keys(config_keys()))
    return "\n\n".join(parts)


def wants_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


def print_help(doc: str, own: list[KeyHelp] | None = None, with_config: bool = True) -> int:
    """Print :func:`help_text` to stdout; the exit status of ``--help`` (0)."""
    print(help_text(doc, own, with_config))
    return 0


def user_error(message: str) -> int:
    """Print ``error: message`` as one line on stderr; the exit status of a user error (2)."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def split_options(argv: list[str], options: list[KeyHelp]) -> tuple[dict, dict[str, str]]:
    """``key=value`` args -> (the script's own ``options``, with defaults; the config overrides).

    A key that is neither an option nor a config key (top-level or dotted, which
    :func:`~yolozoo.config.load_config` checks) raises a ``ConfigError`` with a "did you mean".
    """
    from .config import ConfigError, parse_overrides
    from .registry import did_you_mean

    overrides = parse_overrides(argv)
    own = {o.key: overrides.pop(o.key, o.default) for o in options}
    top = {k.key.split(".")[0] for k in config_keys()} | {"config"}
    for key in overrides:
        if "." not in key and key not in top:
            valid = [o.key for o in options]
            raise ConfigError(f"unknown option {key!r}; options: {', '.join(valid)}, or config keys (--help)"
                              f"{did_you_mean(key, valid) or did_you_mean(key, sorted(top))}")
    return own, overrides
