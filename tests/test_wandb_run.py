"""W&B: tags, best-value summaries, LR curve, predictions panel, per-class AP table, the model artifact."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback, LearningRateMonitor

SHRINK = ["preset=smoke", "data.num_train=32", "data.num_val=16", "trainer.max_epochs=1", "eval.latency_batches=1"]


class _Spy(Callback):
    """Keeps the W&B run and the learning rates LearningRateMonitor recorded."""

    def on_fit_end(self, trainer, pl_module):
        self.run = trainer.logger.experiment
        (monitor,) = [c for c in trainer.callbacks if isinstance(c, LearningRateMonitor)]
        self.lrs = {k: list(v) for k, v in monitor.lrs.items()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_offline_run_has_tags_summaries_lr_panel_per_class_table_and_model(tmp_path, monkeypatch):
    import wandb

    from yolozoo.config import load_config
    from yolozoo.train import train

    defined = {}
    real = wandb.sdk.wandb_run.Run.define_metric

    def spy_define(self, name, *args, **kwargs):
        defined[name] = kwargs.get("summary")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "define_metric", spy_define)
    spy = _Spy()
    cfg = load_config([*SHRINK, "wandb.mode=offline", "wandb.log_model=true", f"out_dir={tmp_path / 'runs'}",
                       f"results_dir={tmp_path / 'results'}", f"data.root={tmp_path / 'data'}"])
    record = train(cfg, callbacks=[spy])

    folder = Path(record["wandb_dir"])
    assert folder.parent.parent == Path(os.environ["WANDB_DIR"])  # WANDB_DIR respected
    assert set(spy.run.tags) >= {"family:yolo", "backbone:lcnet_075", "assigner:tal", "dataset:digits"}
    assert defined["val/mAP"] == "max" and defined["val/mAP50"] == "max"
    assert spy.lrs and all(len(v) == 2 for v in spy.lrs.values())  # 32 images / batch 16: one LR per step
    assert list((folder / "files" / "media" / "images" / "val").glob("predictions_*.png"))  # the panel
    (table_file,) = (folder / "files" / "media" / "table" / "val").glob("per_class_AP_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["class", "AP50", "AP"]
    assert {row[0]: row[2] for row in table["data"]} == pytest.approx(
        {name: v["AP"] for name, v in record["per_class"].items()})
    staging = Path(os.environ["WANDB_DATA_DIR"]) / "artifacts" / "staging"
    final = Path(record["run_dir"]) / "checkpoints" / "last.ckpt"
    assert _sha(final) in {_sha(p) for p in staging.iterdir() if p.is_file()}  # the final checkpoint, staged


def test_no_wandb_work_without_a_logger():
    from yolozoo.wandb_run import log_results, start_run, wandb_callbacks

    assert wandb_callbacks(False, []) == []
    start_run(False, None)
    log_results(False, {"a": {"AP": 1.0}}, "x.ckpt", log_model=True)
