"""Train one sweep point or search trial; a training error becomes a failed result, never an exception.

A multi-device run (``trainer.devices=4``, ``strategy=ddp``) trains in ``python -m yolozoo.sweep.point RUN.json``:
Lightning's DDP launcher re-runs that command for the other ranks, and cannot start a second DDP run in a
process that ran one. Rank 0 writes the record and the result, ``{"status": completed | failed, "reason",
"record": RunRecord dict}``, which the worker reads back.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig

from ..config import load_config, to_dict
from ..environment import environment
from ..record import RunRecord, atomic_write, json_safe, save_record


def needs_own_process(cfg: DictConfig) -> bool:
    """True for DDP runs and runs on more than one device (``auto``/``-1``: every visible GPU)."""
    devices, text = cfg.trainer.devices, str(cfg.trainer.devices).strip()
    if isinstance(devices, ListConfig):
        count = len(devices)
    elif text not in ("auto", "-1"):
        count = len([d for d in text.split(",") if d.strip()]) if "," in text else int(text)
    else:
        count = torch.cuda.device_count() if str(cfg.trainer.accelerator) in ("auto", "gpu", "cuda") else 1
    return count > 1 or "ddp" in str(cfg.trainer.strategy)


def failure_reason(error: BaseException) -> str:
    """``FloatingPointError: loss is nan at ...``: the type and the first lines of the message."""
    lines = str(error).strip().splitlines()
    short = " ".join(lines[:3]) + (" ..." if len(lines) > 3 else "")
    return f"{type(error).__name__}: {short}"[:2000] if lines else type(error).__name__


def failed_result(cfg: DictConfig, reason: str, extra: dict, trace: str | None = None) -> dict:
    """The result of a run that failed before it finished; rank 0 saves its record (config, reason, no metrics; in the
    run folder if ``results_dir`` cannot be written)."""
    from ..train import run_name

    now = datetime.now(timezone.utc).isoformat()
    record = RunRecord(name=run_name(cfg), status="failed", reason=reason, traceback=trace, started=now, finished=now,
                       config=to_dict(cfg), environment=environment(), **extra)
    if rank_zero_only.rank == 0:
        save_record(record, Path(cfg.results_dir), Path(cfg.out_dir))
    return {"status": "failed", "reason": reason, "record": record.to_dict()}


def train_point(cfg: DictConfig, extra: dict, callbacks: list | None = None) -> dict:
    """Train the resolved config ``cfg`` in this process; return the result. ``extra``: record fields (``sweep``
    or ``search``); ``callbacks``: more Lightning callbacks (a search's pruning). KeyboardInterrupt is not caught."""
    from ..panel import PredictionPanel
    from ..train import train

    try:
        record = train(cfg, callbacks=[PredictionPanel(num_images=8), *(callbacks or [])], extra=extra)
        return {"status": "completed", "reason": None, "record": record}
    except Exception as e:
        trace = traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        return failed_result(cfg, failure_reason(e), extra, trace)
    finally:
        gc.collect()
        torch.cuda.empty_cache()  # a no-op unless this process used CUDA


def child_env() -> dict[str, str]:
    """This environment with the source tree (a clone's bench/, examples/) on PYTHONPATH, for ``python -m`` children."""
    source = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))}


def train_point_in_child(cfg: DictConfig, overrides: dict[str, str], extra: dict, callbacks: list[dict] | None = None
                         ) -> dict:
    """Train ``cfg`` (resolved from ``overrides``) in ``python -m yolozoo.sweep.point`` (its DDP ranks re-run that);
    read back the result. ``callbacks``: specs for :func:`build_callback`, built in every rank."""
    work_dir = Path(cfg.out_dir) / "sweep-points"
    work_dir.mkdir(parents=True, exist_ok=True)
    trial = next(iter(extra.values()), {}).get("trial", 0)
    spec_path = work_dir / f"point-{os.getpid()}-{trial}.json"
    result_path = spec_path.with_suffix(".result.json")
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({"overrides": overrides, "extra": extra, "result": str(result_path),
                                     "callbacks": callbacks or []}))
    proc = subprocess.run([sys.executable, "-m", "yolozoo.sweep.point", str(spec_path)], env=child_env(),
                          check=False)
    if result_path.is_file():
        return json.loads(result_path.read_text())
    reason = f"point process exited with code {proc.returncode} without a result"
    if proc.returncode < 0:
        reason += f" (killed by signal {-proc.returncode})"
    return failed_result(cfg, reason, extra)  # the process died before rank 0 wrote a record: it is written here


def build_callback(spec: dict):
    """``{"target": "yolozoo.module:factory", "kwargs": {...}}`` -> ``factory(**kwargs)`` (yolozoo code only)."""
    module, _, name = str(spec.get("target", "")).partition(":")
    if not module.startswith("yolozoo.") or not name:
        raise ValueError(f"callback target must be 'yolozoo.module:factory', got {spec.get('target')!r}")
    return getattr(importlib.import_module(module), name)(**spec.get("kwargs", {}))


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so a killed worker does not leave its point training."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def main(argv: list[str]) -> int:
    """The child process (and its other DDP ranks): train the run in ``argv[0]``; rank 0 writes the result."""
    if len(argv) != 1:
        print("usage: python -m yolozoo.sweep.point RUN.json", file=sys.stderr)
        return 2
    _die_with_parent()
    spec = json.loads(Path(argv[0]).read_text())
    callbacks = [build_callback(c) for c in spec.get("callbacks", [])]
    result = train_point(load_config(spec["overrides"]), spec["extra"], callbacks)
    if rank_zero_only.rank == 0:  # set by the Trainer to this process's global rank
        atomic_write(Path(spec["result"]), json.dumps(json_safe(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
