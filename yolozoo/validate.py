"""Validate a checkpoint on a dataset's val split: the metrics a run reports, and a result record.

Uses the same :class:`~yolozoo.lit.DetectorModule` validation as training, so on the run's
own data a checkpoint reproduces the metrics the run reported for it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from .config import to_dict
from .environment import environment


def validate_checkpoint(cfg: DictConfig, obj: dict, path: str | Path) -> dict:
    """Evaluate the checkpoint ``obj`` (read from ``path``) on ``cfg.data``'s val split; return a record.

    The record: ``name``, ``kind`` "val", ``checkpoint``, ``config`` (the resolved config, the
    stored one with any overrides), ``metrics`` (mAP50, mAP, ..., params, flops), ``per_class``.
    """
    from .checkpoint import detector_state, load_detector_state, stored_hparams
    from .models import count_flops, count_params
    from .train import build_datamodule, build_module, run_name

    started = datetime.now(timezone.utc)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("validate")
    trained_on = stored_hparams(obj).get("num_classes")
    if trained_on is not None and trained_on != len(dm.classes):
        raise ValueError(f"checkpoint={path}: the detector has {trained_on} classes, data.name={cfg.data.name} "
                         f"has {len(dm.classes)}")
    # in the layout the weights trained in, so the metrics are the run's own
    module = build_module(cfg, len(dm.classes), dm.classes, checkpoint_layout=stored_hparams(obj).get("channels_last"))
    load_detector_state(module.model, detector_state(obj), str(path))  # incl. the anchors it trained with
    model = module.model
    t = cfg.trainer
    trainer = L.Trainer(accelerator=t.accelerator, devices=1, precision=t.precision, logger=False,
                        limit_val_batches=t.limit_val_batches, enable_progress_bar=t.enable_progress_bar,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=cfg.out_dir)
    trainer.validate(module, datamodule=dm, verbose=False)
    metrics = dict(module.val_metrics)
    per_class = metrics.pop("per_class", {})
    metrics.update(params=count_params(model), flops=count_flops(model, cfg.data.img_size))
    return {"name": f"{run_name(cfg)}-val", "kind": "val", "status": "completed", "started": started.isoformat(),
            "finished": datetime.now(timezone.utc).isoformat(), "checkpoint": str(path), "config": to_dict(cfg),
            "metrics": metrics, "per_class": per_class, "environment": environment()}


def write_val_record(record: dict, results_dir: Path) -> Path:
    """Write a validation record as JSON under ``results_dir/val/`` (atomically; apart from the runs' records)."""
    out = results_dir / "val"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record['started'][:19].replace(':', '')}-{record['name']}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)
    return path
