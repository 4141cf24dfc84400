"""The columns of a sweep's results frame (:func:`yolozoo.sweep.load_results`); the metrics are the record's."""

from __future__ import annotations

from ..record import METRICS

HEAD_COLUMNS = ("sweep", "study", "trial", "status", "reason", "seed")
TAIL_COLUMNS = ("point", "overrides", "config", *METRICS, "pos_per_gt", "gt_without_pos", "pos_per_level", "history",
                "commit", "date", "device", "cpu", "isa", "preset", "dataset", "wandb_dir", "record", "run_dir",
                "checkpoint", "worker", "attempts", "duration_s", "reused_from")

__all__ = ["HEAD_COLUMNS", "METRICS", "TAIL_COLUMNS"]
