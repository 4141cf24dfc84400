"""Where yolozoo finds sweep and search files by name (``sweep=assigners``, ``search=tal``), installed or not.

Folders searched, in order; the first that holds ``NAME.yaml`` wins:

1. ``$YOLOZOO_SWEEPS``: your own folders of sweep files, separated by ``os.pathsep`` (``:``);
2. ``sweeps/`` of the source tree this package was imported from (a clone, or an editable install);
3. ``<prefix>/share/yolozoo/sweeps``: the copy ``pip install .`` installs (``data-files`` in pyproject.toml).

Search spaces are the ``search/`` subfolder of each. ``sweep=path/to/file.yaml`` (any name
with a ``/`` or ending in ``.yaml``) is read as is.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

ENV = "YOLOZOO_SWEEPS"


def sweep_dirs(sub: str = "") -> list[Path]:
    """The folders searched for sweep files (``sub="search"``: for search spaces), existing ones, in order."""
    env = [Path(p).expanduser() for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    source = Path(__file__).resolve().parents[1] / "sweeps"
    installed = [Path(sysconfig.get_path("data")) / "share" / "yolozoo" / "sweeps",
                 Path(sys.prefix) / "share" / "yolozoo" / "sweeps"]
    out: list[Path] = []
    for folder in (*env, source, *installed):
        folder = folder / sub if sub else folder
        if folder.is_dir() and folder.resolve() not in {f.resolve() for f in out}:
            out.append(folder)
    return out


def list_names(sub: str = "", folder: Path | None = None) -> list[str]:
    """The names (file stems) found in ``folder``, or in every folder of :func:`sweep_dirs`."""
    folders = [Path(folder)] if folder is not None else sweep_dirs(sub)
    return sorted({p.stem for f in folders for p in f.glob("*.yaml")})


def find_file(name: str, sub: str = "", folder: Path | None = None) -> Path | None:
    """``folder/NAME.yaml``, or the first ``NAME.yaml`` in :func:`sweep_dirs`; None if there is none."""
    for f in [Path(folder)] if folder is not None else sweep_dirs(sub):
        path = f / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def where(sub: str = "", folder: Path | None = None) -> str:
    """The folders searched, for an error message."""
    if folder is not None:
        return str(folder)
    return ", ".join(str(f) for f in sweep_dirs(sub)) or f"none found; set {ENV}=/path/to/sweeps"


def find_spec(name_or_path: str, sub: str = "", folder: Path | None = None, error: type = ValueError) -> Path:
    """``assigners`` -> :func:`find_file` (``sub="search"``: a search space), an ``error`` listing the names if there is
    none; a path to a ``.yaml`` file (a name with a ``/`` or a YAML suffix) is used as is."""
    kind, label = ("search", "search space") if sub == "search" else ("sweep", "sweep")
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        if not Path(name_or_path).is_file():
            raise error(f"{kind} file {name_or_path} does not exist")
        return Path(name_or_path)
    path = find_file(name_or_path, sub, folder)
    if path is None:
        raise error(f"unknown {label} {name_or_path!r}; valid: {', '.join(list_names(sub, folder)) or '(none)'} "
                    f"(files in {where(sub, folder)}), or pass {kind}=path/to/file.yaml")
    return path


__all__ = ["ENV", "find_file", "find_spec", "list_names", "sweep_dirs", "where"]
