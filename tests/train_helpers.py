"""Helpers for the smoke-training tests (no tests here): a training setting that learns, and the untrained score.

``preset=smoke`` alone trains 8 steps under weight EMA 0.995, so validation would measure what is
still ~96% the untrained model: :data:`TRAIN` trains 256 images for 3 epochs without EMA. An
untrained model already scores mAP@0.5 ~ 1e-3 by chance, so a run must beat
:func:`untrained_map50` of its own config, not just 0.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

# The layout is fixed, not timed at start-up (the default): a timed choice can differ from run to run, and
# these runs' scores, near the noise floor, differ with the layout (yolov8, seed 0, one thread: mAP@0.5
# 0.010 NCHW, 0.031 channels_last).
# 128 val images, not smoke's 32: on 32 the untrained yolov3_smol scored 0.001-0.005 by chance and its
# trained runs 0.008-0.028 (seeds 0-7), as close as 2.3x; on 128, 0.0006-0.003 and 0.007-0.014, >= 4.6x.
TRAIN = ["data.num_train=256", "data.num_val=128", "trainer.max_epochs=3", "optim.ema_decay=0",
         "trainer.channels_last=false"]


def train_overrides(tmp: Path) -> list[str]:
    """``preset=smoke`` + :data:`TRAIN`, with the dataset cache and every run's output under ``tmp``."""
    return ["preset=smoke", *TRAIN, f"data.root={tmp / 'data'}", f"out_dir={tmp / 'runs'}",
            f"results_dir={tmp / 'results'}"]


def untrained_map50(cfg) -> float:
    """Val mAP@0.5 of the model of ``cfg`` at its initialisation (same seed as ``train()``)."""
    from yolozoo.train import build_datamodule, build_module

    L.seed_everything(cfg.seed, workers=True, verbose=False)  # as train() does before building
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    module = build_module(cfg, num_classes=len(dm.classes))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=cfg.out_dir)
    trainer.validate(module, datamodule=dm, verbose=False)
    return module.val_metrics["mAP50"]
