"""One experiment end to end: build the parts from config, train, evaluate, record.

This is the only module that reads the whole config tree; everything it builds takes
explicit arguments.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint, Timer
from omegaconf import DictConfig

from .assigners import create_assigner
from .config import to_dict
from .datamodule import DetectionDataModule
from .environment import environment
from .lit import DetectorModule
from .losses import DetectionLoss
from .models import build_model, count_flops, count_params
from .speed import measure_speed

log = logging.getLogger(__name__)

# What each dataset builder calls the config's generic data options.
_SPLIT_OPTIONS = {"voc": ("train_sets", "val_sets"), "coco": ("train_set", "val_set")}


def dataset_options(data: DictConfig) -> dict:
    """The builder options implied by ``cfg.data`` for dataset ``data.name``."""
    if data.name == "digits":
        return {"num_train": data.num_train, "num_val": data.num_val, "img_size": data.img_size,
                "seed": data.gen_seed}
    options = {}
    if data.name in _SPLIT_OPTIONS:
        for key, value in zip(_SPLIT_OPTIONS[data.name], (data.train_split, data.val_split)):
            if value is not None:
                options[key] = value
    return options


def build_datamodule(cfg: DictConfig) -> DetectionDataModule:
    d = cfg.data
    return DetectionDataModule(d.name, d.root, dataset_options(d), d.img_size, cfg.trainer.batch_size,
                               d.num_workers, flip=d.flip, color_jitter=d.color_jitter, mosaic=d.mosaic,
                               seed=cfg.seed)


def build_module(cfg: DictConfig, num_classes: int) -> DetectorModule:
    assigner_kw = {k: v for k, v in cfg.assigner.items() if k != "name"}
    return DetectorModule(
        model=build_model(cfg.model, num_classes),
        assigner=create_assigner(cfg.assigner.name, **assigner_kw),
        loss=DetectionLoss(cfg.loss.iou_type),
        loss_weights={"cls": cfg.loss.cls, "box": cfg.loss.box},
        optim=dict(cfg.optim),
        postprocess_kw={"score_thresh": cfg.eval.score_thresh, "iou_thresh": cfg.eval.iou_thresh,
                        "max_det": cfg.eval.max_det},
        img_size=cfg.data.img_size,
    )


def run_name(cfg: DictConfig) -> str:
    return cfg.name or f"{cfg.data.name}-{cfg.model.backbone}-w{cfg.model.width}-{cfg.assigner.name}-s{cfg.seed}"


class History(Callback):
    """Keeps every validated epoch's train/ and val/ scalars (curves, best epoch) and prints a line."""

    def __init__(self):
        self.epochs: list[dict] = []
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        # Runs after this epoch's validation, so both train/ (epoch means) and val/ are here.
        row = {"epoch": trainer.current_epoch + 1}  # 1-based: "after epoch N"
        row.update({k.removesuffix("_epoch"): float(v) for k, v in trainer.callback_metrics.items()
                    if k.startswith(("train/", "val/")) and not k.endswith("_step")})
        self.epochs.append(row)
        if trainer.is_global_zero:
            print(f"epoch {row['epoch']}/{trainer.max_epochs}  loss {row.get('train/loss', float('nan')):.3f}  "
                  f"val mAP@0.5 {row.get('val/mAP50', float('nan')):.3f}  mAP@0.5:0.95 "
                  f"{row.get('val/mAP', float('nan')):.3f}  ({time.perf_counter() - self._start:.0f} s)", flush=True)


def build_logger(cfg: DictConfig, name: str, out_dir: Path):
    if cfg.wandb.mode == "disabled":
        return False
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_DIR", str(out_dir))
    return WandbLogger(name=name, project=cfg.wandb.project, group=cfg.wandb.group, save_dir=str(out_dir),
                       offline=cfg.wandb.mode == "offline", config=to_dict(cfg))


def train(cfg: DictConfig, callbacks: list[Callback] | None = None) -> dict:
    """Train and evaluate the experiment ``cfg``; return (and write) its result record."""
    started = datetime.now(timezone.utc)
    name = run_name(cfg)
    run_dir = Path(cfg.out_dir) / f"{started:%Y%m%d-%H%M%S}-{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    module = build_module(cfg, num_classes=len(dm.classes))
    history, timer = History(), Timer()
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor="val/mAP", mode="max", save_last=True)
    if cfg.optim.ema_decay > 0:
        # Validation and the final model use the averaged weights. Averaging starts after the
        # warm-up: mixing in the random initial weights would spoil the early epochs.
        steps = len(dm.train_dataset) // cfg.trainer.batch_size // cfg.trainer.accumulate_grad_batches
        start = int(cfg.optim.warmup * steps * cfg.trainer.max_epochs)
        callbacks = [EMAWeightAveraging(decay=cfg.optim.ema_decay, update_starting_at_step=start),
                     *(callbacks or [])]
    t = cfg.trainer
    trainer = L.Trainer(
        max_epochs=t.max_epochs, precision=t.precision, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val, deterministic=t.deterministic,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar, num_sanity_val_steps=0, default_root_dir=str(run_dir),
        logger=build_logger(cfg, name, run_dir), callbacks=[history, timer, checkpoint, *(callbacks or [])],
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)

    metrics = dict(module.val_metrics)
    per_class = metrics.pop("per_class", {})
    best = max(history.epochs, key=lambda r: r.get("val/mAP", float("-inf")), default={})
    model = module.model
    speed = measure_speed(model, cfg.data.img_size, iters=cfg.eval.latency_batches)
    train_time = timer.time_elapsed("train")
    images_seen = len(dm.train_dataset) // t.batch_size * t.batch_size * len(history.epochs)
    metrics.update(
        params=count_params(model), flops=count_flops(model, cfg.data.img_size),
        latency_ms=speed["latency_ms"], throughput=speed["throughput"], train_time_s=train_time,
        train_img_per_s=images_seen / train_time if train_time else None,
        epochs=trainer.current_epoch, best_epoch=best.get("epoch"), best_mAP=best.get("val/mAP"),
    )
    record = {
        "name": name, "status": "completed", "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(), "config": to_dict(cfg), "metrics": metrics,
        "per_class": per_class, "history": history.epochs, "environment": environment(),
        "run_dir": str(run_dir), "checkpoint": checkpoint.best_model_path or None,
    }
    if trainer.is_global_zero:
        write_record(record, Path(cfg.results_dir))
    if trainer.logger:
        trainer.logger.experiment.summary.update({k: v for k, v in metrics.items() if v is not None})
    return record


def write_record(record: dict, results_dir: Path) -> Path:
    """Write one result as JSON under ``results_dir/runs/`` (atomically) and return its path."""
    out = results_dir / "runs"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record['started'][:19].replace(':', '')}-{record['name']}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)
    return path


__all__ = ["build_datamodule", "build_module", "train", "write_record"]
