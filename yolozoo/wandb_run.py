"""What a run adds to its W&B run: tags, metric summaries, LR curve, predictions, per-class AP, the model.

Every function here is a no-op without a W&B logger, and never fails the run: an error is a
warning (see :func:`wandb_call`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# metric -> the summary W&B keeps of it (the run table shows the best, not the last, value)
SUMMARIES = {"val/mAP": "max", "val/mAP50": "max", "val/mAP75": "max", "train/loss": "min"}


def wandb_call(what: str, fn, *args, **kwargs):
    """Call a W&B function; on any error log a warning and go on (W&B never fails a run)."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        log.warning("W&B %s failed (%s: %s); the run goes on", what, type(e).__name__, e)
        return None


def run_tags(cfg: DictConfig) -> list[str]:
    """``family:yolo``, ``backbone:lcnet_075``, ``assigner:tal``, ``dataset:digits``."""
    return [f"family:{cfg.model.family}", f"backbone:{cfg.model.backbone}", f"assigner:{cfg.assigner.name}",
            f"dataset:{cfg.data.name}"]


def start_run(logger, cfg: DictConfig) -> None:
    """Tag the started run and define the best-value summaries of :data:`SUMMARIES`."""
    if not logger:
        return

    def setup():
        run = logger.experiment
        run.tags = tuple(dict.fromkeys([*(run.tags or ()), *run_tags(cfg)]))
        for metric, summary in SUMMARIES.items():
            run.define_metric(metric, summary=summary)

    wandb_call("run setup", setup)


def wandb_callbacks(logger, callbacks: list[Callback]) -> list[Callback]:
    """The learning-rate curve and (unless ``callbacks`` has one) the validation predictions panel."""
    if not logger:
        return []
    from .panel import PredictionPanel

    extra: list[Callback] = [LearningRateMonitor(logging_interval="step")]
    if not any(isinstance(c, PredictionPanel) for c in callbacks):
        extra.append(PredictionPanel())
    return extra


def log_results(logger, per_class: dict, checkpoint: str | Path | None, log_model: bool) -> None:
    """Per-class AP as a table and bar chart (``val/per_class_AP``); the checkpoint as a model artifact."""
    if not logger:
        return
    import wandb

    def per_class_ap():
        rows = [[str(name), v.get("AP50"), v.get("AP")] for name, v in per_class.items()]
        table = wandb.Table(columns=["class", "AP50", "AP"], data=rows)
        chart = wandb.plot.bar(table, "class", "AP", title="AP@0.5:0.95 per class")
        logger.experiment.log({"val/per_class_AP": table, "val/per_class_AP_chart": chart})

    if per_class:
        wandb_call("per-class AP", per_class_ap)
    if log_model and checkpoint:
        def artifact():
            run = logger.experiment
            art = wandb.Artifact(f"model-{run.id}", type="model", metadata={"file": Path(checkpoint).name})
            art.add_file(str(checkpoint), name="model.ckpt")
            run.log_artifact(art, aliases=["latest", "final"])

        wandb_call("model artifact", artifact)
