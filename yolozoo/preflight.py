"""Checks before anything trains: every place a run writes to can be written.

A config is checked by :func:`yolozoo.config.load_config` (keys, types, ranges, names); what
it cannot see is the disk. :func:`check_outputs` creates each output folder a run or sweep
will write to (``out_dir``, ``results_dir``, the digits cache, a SQLite ``storage=``'s folder)
and writes a probe file in it, so a bad location is a one-line error (exit 2) before any
training, not a traceback after it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig

from .config import ConfigError
from .redact import redact


def check_writable(folder: str | Path, key: str, what: str = "there") -> None:
    """Create ``folder`` if needed and write (then remove) a probe file in it; ConfigError naming ``key`` if not."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".yolozoo-probe-"):
            pass
    except OSError as e:
        raise ConfigError(f"{key}={redact(str(folder))}: cannot write {what} ({e.strerror or e})") from None


def digits_cache(cfg: DictConfig) -> Path | None:
    """The digits cache folder ``cfg`` generates into, or None when there is nothing to write (another dataset,
    or the scenes are cached already)."""
    if cfg.data.name != "digits":
        return None
    from .data.digits import cache_dir
    from .data.registry import dataset_options
    from .train import dataset_options as config_options

    root = Path(cfg.data.root if cfg.data.root is not None else os.environ.get("YOLOZOO_DATA") or "data")
    options = {k: int(v) for k, v in {**dataset_options("digits"), **config_options(cfg.data)}.items()}
    cached = cache_dir(root, options)
    return None if (cached / "train").is_dir() and (cached / "val").is_dir() else root


def check_storage(url: str) -> None:
    """A SQLite ``storage=`` URL's folder can be written (other databases are checked when opened)."""
    from .sweep.store import sqlite_path

    path = sqlite_path(url)
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"storage={url}: {path} is a folder; name a database file, e.g. sqlite:///{path}/sweeps.db")
    try:
        check_writable(path.parent, "storage", "the database's folder")
    except ConfigError:
        raise ConfigError(f"storage={redact(url)}: cannot write the database's folder {path.parent}") from None


def check_outputs(cfgs: Iterable[DictConfig], storage: str | None = None) -> None:
    """Every ``out_dir``, ``results_dir`` and digits cache of ``cfgs`` (and ``storage``'s folder) is writable."""
    seen = set()
    for cfg in cfgs:
        for key, folder, what in (("out_dir", cfg.out_dir, "there"), ("results_dir", cfg.results_dir, "there"),
                                  ("data.root", digits_cache(cfg), "the digits cache there")):
            if folder is not None and (key, str(folder)) not in seen:
                seen.add((key, str(folder)))
                check_writable(folder, key, what)
    if storage:
        check_storage(storage)
