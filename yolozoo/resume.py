"""Continue an interrupted run: ``resume=true | auto | PATH``.

A run saves ``checkpoints/last.ckpt`` after every validated epoch. Lightning puts the
weights, optimizer, learning-rate schedule, EMA weights, loop counters and the callbacks'
state in it (:class:`~yolozoo.train.History`'s epochs, the Timer's elapsed time), and
:class:`RngState` adds the torch, NumPy and Python random states. Resuming restores all of
them and trains from the start of the epoch that was cut off. On the CPU with
``data.num_workers=0`` (the default on two cores) the resumed run therefore ends with the
same weights and metrics as an uninterrupted one (``tests/test_resume.py`` kills a run
mid-epoch and checks). Loader worker processes keep random states of their own, so with
``data.num_workers>0`` a resumed run is a valid run of the same config, not a bitwise copy.

- ``resume=PATH``: a run folder (``runs/<time>-<name>``) or a checkpoint in one. The config
  stored in the checkpoint is the base; ``key=value`` overrides go on top.
- ``resume=true``: the newest unfinished run under ``out_dir`` with this run's name and the
  same training config; an error if there is none.
- ``resume=auto``: the same, or a fresh start if there is none. Sweep points use it, so a
  point whose worker died continues from its last finished epoch.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from .checkpoint import CheckpointError, load_checkpoint, stored_hparams
from .config import ConfigError, load_config, parse_overrides, to_dict
from .time_budget import stored_plan
from .training_identity import training_config

FLAGS = ("false", "true", "auto")


def resume_mode(value: Any) -> str:
    """``false``, ``true``, ``auto``, or ``path`` (``value`` names a run folder or checkpoint)."""
    text = str(value).lower()
    return text if text in FLAGS else "path"


def checkpoint_in(path: str | Path) -> Path:
    """The checkpoint ``resume=PATH`` names: the file itself, or a run folder's ``checkpoints/last.ckpt``."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise ConfigError(f"resume={path}: the folder holds no checkpoints/last.ckpt (did its first epoch finish?)")
    if not path.is_file():
        raise ConfigError(f"resume={path}: no such run folder or checkpoint")
    return path


def load_run_config(argv: list[str]) -> DictConfig:
    """The config of ``bench/run.py ARGS``: with ``resume=PATH``, the checkpoint's stored config + ``argv``."""
    overrides = parse_overrides(argv)
    value = overrides.get("resume")
    if value is None or resume_mode(value) != "path":
        return load_config(overrides)
    path = checkpoint_in(value)
    try:
        stored = stored_hparams(load_checkpoint(path)).get("config")
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(stored, dict):
        raise ConfigError(f"resume={value}: {path} stores no config (a checkpoint from an older yolozoo); "
                          "start the run again")
    return load_config(overrides, base=stored, base_origin=f"{path} (stored config)")


def unfinished(path: Path, cfg: DictConfig) -> bool:
    """The checkpoint at ``path`` is of ``cfg``'s training config and stopped before its last epoch."""
    try:
        obj = load_checkpoint(path)
    except CheckpointError:
        return False  # cut off while it was written: not a run to continue
    stored = stored_hparams(obj).get("config")
    if not isinstance(stored, dict):
        return False
    if training_config(stored, keep=("name",)) != training_config(to_dict(cfg), keep=("name",)):
        return False
    plan = stored_plan(obj)  # a time budget's run ends at the step it chose, maybe before max_epochs
    if plan is not None:
        return int(obj.get("global_step", 0)) < plan["total_steps"]
    return int(obj.get("epoch", 0)) + 1 < cfg.trainer.max_epochs


def find_unfinished(cfg: DictConfig, name: str) -> Path | None:
    """The newest ``out_dir/<time>-<name>/checkpoints/last.ckpt`` that :func:`unfinished` accepts."""
    out_dir = Path(cfg.out_dir)
    if not out_dir.is_dir():
        return None
    runs = sorted((p for p in out_dir.glob(f"*-{name}") if p.name.split("-", 2)[-1] == name), reverse=True)
    for run in runs:
        path = run / "checkpoints" / "last.ckpt"
        if path.is_file() and unfinished(path, cfg):
            return path
    return None


def resume_checkpoint(cfg: DictConfig, name: str) -> Path | None:
    """The checkpoint the run ``cfg`` (named ``name``) continues from, or None for a fresh start."""
    mode = resume_mode(cfg.resume)
    if mode == "false":
        return None
    if mode == "path":
        return checkpoint_in(cfg.resume)
    found = find_unfinished(cfg, name)
    if found is None and mode == "true":
        raise ConfigError(f"resume=true: no unfinished run named {name!r} with this config under "
                          f"{cfg.out_dir}/ (resume=PATH names one; resume=auto starts afresh when there is none)")
    return found


def stored_layout(path: Path) -> bool | None:
    """The ``channels_last`` the checkpoint's run trained in (None: a checkpoint from before it was stored)."""
    return stored_hparams(load_checkpoint(path)).get("channels_last")


class RngState(Callback):
    """Saves the torch, NumPy and Python random states in each checkpoint, and sets them when a
    resumed run loads it. Lightning loads callback states before it draws anything (it builds the
    resumed epoch's train iterator right after): the data order and augmentations that follow
    are those the uninterrupted run drew after saving."""

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, state, gauss_next = random.getstate()
        return {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                          has_gauss, gauss],
                "python": [version, list(state), gauss_next]}

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, inner, gauss_next = state_dict["python"]
        random.setstate((version, tuple(inner), gauss_next))


__all__ = ["RngState", "checkpoint_in", "find_unfinished", "load_run_config", "resume_checkpoint", "resume_mode",
           "stored_layout"]
