"""Run one grid point: resolve its config, train, and turn the outcome into a result (never raise).

A point on one device trains in the worker's own process. A point on several devices
(``trainer.devices=4``, ``trainer.strategy=ddp``) trains in a child process,
``python -m yolozoo.sweep.child POINT.json``: Lightning's DDP launcher starts the other
ranks by re-running that command, so they all train the same point, and Lightning cannot
start a second DDP run in a process that already ran one. Only global rank 0 writes the
result (and logs to W&B); the worker, not the point, talks to the sweep's store.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from ..config import load_config, to_dict

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]


def device_count(cfg: DictConfig) -> int:
    """How many devices Lightning will use for ``cfg.trainer`` (``auto`` = every visible GPU, else 1)."""
    devices, accelerator = cfg.trainer.devices, str(cfg.trainer.accelerator)
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices)
    text = str(devices).strip()
    if text in ("auto", "-1"):
        if accelerator in ("auto", "gpu", "cuda"):
            import torch

            return max(torch.cuda.device_count(), 1)
        return 1
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    return int(text)


def needs_own_process(cfg: DictConfig) -> bool:
    """True for multi-device or DDP points (see the module docstring)."""
    return device_count(cfg) > 1 or "ddp" in str(cfg.trainer.strategy)


def failure_reason(error: BaseException) -> str:
    """``FloatingPointError: loss is nan at ...``: the type and the first lines of the message."""
    text = str(error).strip()
    lines = text.splitlines()
    short = " ".join(lines[:3]) + (" ..." if len(lines) > 3 else "")
    return f"{type(error).__name__}: {short}"[:2000] if text else type(error).__name__


def _failure_record(cfg: DictConfig, reason: str, trace: str, extra: dict) -> dict:
    from datetime import datetime, timezone

    from ..environment import environment
    from ..train import run_name

    now = datetime.now(timezone.utc).isoformat()
    return {"name": run_name(cfg), "status": "failed", "reason": reason, "traceback": trace, "started": now,
            "finished": now, "config": to_dict(cfg), "metrics": {}, "per_class": {}, "history": [],
            "environment": environment(), "run_dir": None, "checkpoint": None, "wandb_dir": None, **extra}


def train_point(overrides: dict[str, str], extra: dict, panel_images: int = 8, callbacks: list | None = None) -> dict:
    """Train the point in this process; return ``{"status", "reason", "record", "record_path"}``.

    ``callbacks``: more Lightning callbacks for this run (a search adds its pruning callback).

    Any exception (a crash, a NaN loss's ``FloatingPointError``) becomes a failed result with
    its reason, and a failure record is written next to the others. KeyboardInterrupt is not
    caught: stopping a worker stops it.
    """
    from lightning.pytorch.utilities import rank_zero_only

    from ..train import save_record, train
    from .panel import PredictionPanel

    cfg = load_config(overrides)
    try:
        record = train(cfg, callbacks=[PredictionPanel(num_images=panel_images), *(callbacks or [])], extra=extra)
        result = {"status": "completed", "reason": None, "record": record, "record_path": record.get("record_path")}
    except Exception as e:
        reason, trace = failure_reason(e), traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        record = _failure_record(cfg, reason, trace, extra)
        path = save_record(record, Path(cfg.results_dir), Path(cfg.out_dir)) if rank_zero_only.rank == 0 else None
        result = {"status": "failed", "reason": reason, "record": record, "record_path": path and str(path)}
    finally:
        gc.collect()
        _empty_cuda_cache()
    return result


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_point_in_child(overrides: dict[str, str], extra: dict, work_dir: Path, panel_images: int = 8,
                         callbacks: list[dict] | None = None) -> dict:
    """Train the point in ``python -m yolozoo.sweep.child`` (its ranks re-run that); read back its result.

    ``callbacks``: more Lightning callbacks, each ``{"target": "yolozoo.module:factory", "kwargs": {...}}``
    (JSON), built in every rank of the child (see :func:`build_callback`).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path = work_dir / f"point-{os.getpid()}-{extra.get('sweep', {}).get('trial', 0)}.json"
    result_path = spec_path.with_suffix(".result.json")
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({"overrides": overrides, "extra": extra, "result": str(result_path),
                                     "panel_images": panel_images, "callbacks": callbacks or []}))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "yolozoo.sweep.child", str(spec_path)], env=env, check=False)
    if result_path.is_file():
        return json.loads(result_path.read_text())
    reason = f"point process exited with code {proc.returncode} without a result"
    if proc.returncode < 0:
        reason += f" (killed by signal {-proc.returncode})"
    return {"status": "failed", "reason": reason, "record": None, "record_path": None}


def build_callback(spec: dict):
    """``{"target": "yolozoo.module:factory", "kwargs": {...}}`` -> ``factory(**kwargs)`` (yolozoo code only)."""
    import importlib

    module, _, name = str(spec.get("target", "")).partition(":")
    if not module.startswith("yolozoo.") or not name:
        raise ValueError(f"callback target must be 'yolozoo.module:factory', got {spec.get('target')!r}")
    return getattr(importlib.import_module(module), name)(**spec.get("kwargs", {}))
