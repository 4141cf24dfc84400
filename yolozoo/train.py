"""One experiment end to end: build the parts from config, train, evaluate, record.

This is the only module that reads the whole config tree; everything it builds takes
explicit arguments.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from .assigners import create_assigner
from .config import to_dict
from .datamodule import DetectionDataModule
from .ema import FusedEMA
from .environment import environment, slow_precision
from .interrupt import CtrlC
from .layout import resolve_channels_last
from .lit import DetectorModule
from .models import build_model, count_flops, count_params
from .record import RunRecord, safe_name, save_record
from .resume import RngState, resume_checkpoint, stored_layout
from .speed import timing_pass
from .time_budget import build_time_budget, now
from .wandb_run import log_results, start_run, wandb_call, wandb_callbacks

log = logging.getLogger(__name__)

# What each dataset builder calls the config's generic data options.
_SPLIT_OPTIONS = {"voc": ("train_sets", "val_sets"), "coco": ("train_set", "val_set")}


def dataset_options(data: DictConfig) -> dict:
    """The builder options implied by ``cfg.data`` for dataset ``data.name``."""
    if data.name == "digits":
        return {"num_train": data.num_train, "num_val": data.num_val, "img_size": data.img_size,
                "seed": data.gen_seed, "distort": data.distort}
    options = {}
    if data.name in _SPLIT_OPTIONS:
        for key, value in zip(_SPLIT_OPTIONS[data.name], (data.train_split, data.val_split)):
            if value is not None:
                options[key] = value
    return options


def build_datamodule(cfg: DictConfig) -> DetectionDataModule:
    d = cfg.data
    jitter = d.color_jitter if d.jitter_on == "loader" else 0.0  # else the module jitters batches on the device
    return DetectionDataModule(d.name, d.root, dataset_options(d), d.img_size, cfg.trainer.batch_size,
                               d.num_workers, flip=d.flip, color_jitter=jitter, scale=d.scale,
                               translate=d.translate, mosaic=d.mosaic, seed=cfg.seed, cache=d.cache)


def ready_datamodule(cfg: DictConfig, stage: str = "fit") -> DetectionDataModule:
    """:func:`build_datamodule`, its data prepared (digits generated) and set up for ``stage``."""
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup(stage)
    return dm


def build_anchors(cfg: DictConfig) -> list | None:
    """The anchor head's anchors for ``cfg.model.anchors`` (None for a model without anchor boxes).

    ``auto`` fits them to the training boxes (read from the annotations, no images) and
    caches them under ``out_dir/anchors/``; the k-means seed is fixed, so they depend on the data only.
    """
    m, d = cfg.model, cfg.data
    from .models.families import family_levels, family_priors

    if family_priors(m) != "anchor":
        return None
    from omegaconf import OmegaConf

    from .data.registry import create_dataset
    from .models.anchors import box_sizes, resolve_anchors

    def train_box_sizes():
        return box_sizes(create_dataset(d.name, "train", d.root, **dataset_options(d)).records, d.img_size)

    spec = m.anchors if isinstance(m.anchors, str) else OmegaConf.to_container(m.anchors)
    key = {"data": d.name, "root": d.root, "options": dataset_options(d)}
    return resolve_anchors(spec, m.num_anchors, d.img_size, train_box_sizes, Path(cfg.out_dir) / "anchors", key,
                           num_levels=family_levels(m))


def build_module(cfg: DictConfig, num_classes: int, classes: list[str] | None = None,
                 checkpoint_layout: bool | None = None) -> DetectorModule:
    """The LightningModule of ``cfg``; its checkpoints store the config, ``classes``, anchors and memory layout.

    ``checkpoint_layout``: the ``channels_last`` of the checkpoint whose weights the module will load (a resumed
    run, a validation). It keeps the layout the weights trained in: ``trainer.channels_last=null`` would time
    it again and may choose the other one on a busy machine, the same numbers only up to rounding (and an
    almost untrained detector's near-tied scores can rank differently).
    """
    from .checkpoint import checkpoint_hparams
    from .models.families import get_family

    assigner_kw = {k: v for k, v in cfg.assigner.items() if k != "name"}
    family = get_family(cfg.model.family)
    anchors = build_anchors(cfg)
    classes = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
    model = build_model(cfg.model, num_classes, anchors)
    t = cfg.trainer
    on_gpu = t.accelerator in ("gpu", "cuda") or (t.accelerator == "auto" and torch.cuda.is_available())
    if checkpoint_layout is not None:
        channels_last, layout = checkpoint_layout, {"channels_last": checkpoint_layout, "how": "checkpoint"}
    else:
        channels_last, layout = resolve_channels_last(t.channels_last, model, cfg.data.img_size, t.batch_size, on_gpu)
    if layout["how"] == "auto: timed":
        print(f"trainer.channels_last=null: {channels_last} (a training step {layout['channels_last_ms']} ms "
              f"channels_last, {layout['nchw_ms']} ms NCHW)", flush=True)
    module = DetectorModule(
        model=model,
        assigner=create_assigner(cfg.assigner.name, **assigner_kw),
        loss=family.make_loss(cfg.loss.iou_type),
        loss_weights={term: cfg.loss[term] for term in family.loss_terms},
        optim=dict(cfg.optim),
        postprocess_kw={"score_thresh": cfg.eval.score_thresh, "iou_thresh": cfg.eval.iou_thresh,
                        "max_det": cfg.eval.max_det},
        img_size=cfg.data.img_size,
        channels_last=channels_last,
        batch_jitter=cfg.data.color_jitter if cfg.data.jitter_on == "device" else 0.0,
        compile_mode=t.compile,
        hparams={**checkpoint_hparams(to_dict(cfg), classes, anchors), "channels_last": channels_last},
    )
    module.layout = layout  # for the record
    return module


def run_name(cfg: DictConfig) -> str:
    """The run's name (``name=``, else one derived from the config), safe as a file or folder name."""
    family = "" if cfg.model.family == "yolo" else f"{cfg.model.family}-"
    return safe_name(cfg.name or (f"{cfg.data.name}-{family}{cfg.model.backbone}-w{cfg.model.width}"
                                  f"-{cfg.assigner.name}-s{cfg.seed}"))


class History(Callback):
    """Keeps every validated epoch's train/ and val/ scalars (curves, best epoch) and prints a line."""

    def __init__(self):
        self.epochs: list[dict] = []
        self._start = time.perf_counter()

    def state_dict(self) -> dict:  # in every checkpoint: a resumed run's record has all its epochs
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epochs = [dict(row) for row in state_dict.get("epochs", [])]

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
    """A WandbLogger with the resolved config, or False (``wandb.mode=disabled``).

    W&B must never stop a run: the run is started here (on rank 0), and if that fails, e.g.
    with no network in ``online`` mode, the run falls back to offline (``wandb sync`` later),
    then to no W&B, with a warning.
    """
    if cfg.wandb.mode == "disabled":
        return False
    from lightning.pytorch.loggers import WandbLogger

    # a WANDB_DIR set by the user wins; the environment is not changed, so the next run in this process
    # (a sweep's next point) gets its own folder again
    out_dir = Path(os.environ.get("WANDB_DIR") or out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    modes = ["online", "offline"] if cfg.wandb.mode == "online" else ["offline"]
    for mode in modes:
        try:
            logger = WandbLogger(name=name, project=cfg.wandb.project, group=cfg.wandb.group, save_dir=str(out_dir),
                                 offline=mode == "offline", config=to_dict(cfg))
            logger.experiment  # noqa: B018  (starts the W&B run now, on rank 0 only)
            return logger
        except Exception as e:
            log.warning("W&B %s run could not start (%s: %s); %s", mode, type(e).__name__, e,
                        "trying offline" if mode != modes[-1] else "this run goes on without W&B")
    return False


def _finish_wandb(logger, exit_code: int) -> str | None:
    """Finish the logger's W&B run (so the next run in this process starts a new one); return its folder."""
    from lightning.pytorch.utilities import rank_zero_only

    if not logger or rank_zero_only.rank != 0:  # other ranks hold a dummy run
        return None
    run = wandb_call("run", lambda: logger.experiment)
    if run is None:
        return None
    folder = wandb_call("run folder", lambda: str(Path(run.dir).parent))
    wandb_call("finish", run.finish, exit_code=exit_code)
    return folder


def train(cfg: DictConfig, callbacks: list[Callback] | None = None, extra: dict | None = None) -> dict:
    """Train and evaluate the experiment ``cfg``; write its :class:`~yolozoo.record.RunRecord`, return it as a dict.

    ``extra``: more record fields (a sweep point adds ``sweep``, a search trial ``search``).
    The record's ``record_path`` is the JSON file written (rank 0), ``wandb_dir`` the W&B run folder;
    with ``trainer.max_time``, ``budget`` is the time budget's plan and ``wall_s`` the seconds from this
    call to the record (see :mod:`yolozoo.time_budget`).
    """
    clock_start = now()  # trainer.max_time counts from here
    started = datetime.now(timezone.utc)
    env = environment()  # the code and machine at the start: the tree may change while a long run trains
    if slow := slow_precision(cfg.trainer.precision, cfg.trainer.accelerator):
        warnings.warn(slow, stacklevel=2)
    name = run_name(cfg)
    resume_from = resume_checkpoint(cfg, name)
    if resume_from is not None:  # the interrupted run's folder: its checkpoints go on being updated there
        run_dir = resume_from.parent.parent if resume_from.parent.name == "checkpoints" else resume_from.parent
        print(f"resuming {name} from {resume_from}", flush=True)
    else:
        run_dir = Path(cfg.out_dir) / f"{started:%Y%m%d-%H%M%S}-{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = ready_datamodule(cfg)
    module = build_module(cfg, num_classes=len(dm.classes), classes=dm.classes,
                          checkpoint_layout=resume_from and stored_layout(resume_from))
    history, timer = History(), Timer()
    # the best epoch (epoch=N-step=M.ckpt), and last.ckpt after every epoch: the final model, and what
    # resume= continues from (Lightning's save_last alone writes it only when a new best is saved)
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor="val/mAP", mode="max")
    last = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", enable_version_counter=False)
    ema = None
    if cfg.optim.ema_decay > 0:
        # Validation and the final model use the averaged weights. Averaging starts after the
        # warm-up: mixing in the random initial weights would spoil the early epochs.
        steps = len(dm.train_dataset) // cfg.trainer.batch_size // cfg.trainer.accumulate_grad_batches
        start = int(cfg.optim.warmup * steps * cfg.trainer.max_epochs)  # a time budget moves it
        ema = FusedEMA(decay=cfg.optim.ema_decay, update_starting_at_step=start)
        callbacks = [ema, *(callbacks or [])]
    budget = build_time_budget(cfg, clock_start, len(dm.val_dataset), ema)
    if budget is not None:
        callbacks = [budget, *(callbacks or [])]
    t = cfg.trainer
    logger = build_logger(cfg, name, run_dir)
    start_run(logger, cfg)
    callbacks = [*(callbacks or []), *wandb_callbacks(logger, callbacks or [])]
    try:  # whatever fails, finish the W&B run, so the next run in this process starts its own
        trainer = L.Trainer(
            max_epochs=t.max_epochs, precision=t.precision, accelerator=t.accelerator, devices=t.devices,
            strategy=t.strategy, accumulate_grad_batches=t.accumulate_grad_batches,
            gradient_clip_val=t.gradient_clip_val, deterministic=t.deterministic,
            limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
            check_val_every_n_epoch=t.check_val_every_n_epoch, log_every_n_steps=t.log_every_n_steps,
            enable_progress_bar=t.enable_progress_bar, num_sanity_val_steps=0, default_root_dir=str(run_dir),
            logger=logger, callbacks=[CtrlC(), history, timer, checkpoint, last, RngState(), *(callbacks or [])],
            enable_model_summary=False,
        )
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
        except SystemExit as e:
            # Lightning turns Ctrl-C into sys.exit(1) after its own shutdown (ignoring SIGINT from then on),
            # and SIGTERM into SIGTERMException, a SystemExit too. Callers tell them apart (exit 130 vs
            # 143), so Ctrl-C goes on as itself.
            if isinstance(e, SIGTERMException) or trainer.received_sigterm:
                raise
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt from None

        metrics = dict(module.val_metrics)
        per_class = metrics.pop("per_class", {})
        best = max(history.epochs, key=lambda r: r.get("val/mAP", float("-inf")), default={})
        model = module.model
        timing = timing_pass(model, cfg.data.img_size, batches=cfg.eval.latency_batches,
                             threads=cfg.eval.timing_threads)
        train_time = timer.time_elapsed("train")
        budgeted = budget is not None and budget.plan is not None
        epochs = budget.plan["epochs"] if budgeted else trainer.current_epoch  # budgeted: may end mid-epoch
        images_seen = len(dm.train_dataset) // t.batch_size * t.batch_size * (
            epochs if budgeted else len(history.epochs))
        metrics.update(
            params=count_params(model), flops=count_flops(model, cfg.data.img_size),
            **timing.metrics(), train_time_s=train_time,
            train_img_per_s=images_seen / train_time if train_time else None,
            epochs=epochs, best_epoch=best.get("epoch"), best_mAP=best.get("val/mAP"),
        )
        record = RunRecord(
            name=name, status="completed", started=started.isoformat(),
            finished=datetime.now(timezone.utc).isoformat(), config=to_dict(cfg), metrics=metrics,
            per_class=per_class, history=history.epochs, environment=env, timing=timing.as_dict(),
            run_dir=str(run_dir), checkpoint=checkpoint.best_model_path or None,
            resumed_from=str(resume_from) if resume_from is not None else None, layout=module.layout,
            budget={**budget.summary(), "wall_s": round(now() - clock_start, 1)} if budget else None,
            **(extra or {}),
        )
        log_results(logger, per_class, last.best_model_path or checkpoint.best_model_path,
                    cfg.wandb.log_model)
        if logger:
            summary = {k: v for k, v in metrics.items() if v is not None}
            wandb_call("summary", lambda: logger.experiment.summary.update(summary))
    except BaseException:
        _finish_wandb(logger, exit_code=1)
        raise
    record.wandb_dir = _finish_wandb(logger, exit_code=0)
    if trainer.is_global_zero:
        save_record(record, Path(cfg.results_dir), run_dir)
    return record.to_dict()


__all__ = ["build_datamodule", "build_module", "run_name", "safe_name", "save_record", "train"]
