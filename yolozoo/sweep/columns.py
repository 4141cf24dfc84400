"""The one list of what a run record's metrics hold, and the columns of a results frame.

Every reader (the sweep store, published records, searches, reports, W&B) takes its metric
names from here.
"""

from __future__ import annotations

METRICS = ("mAP50", "mAP", "mAP75", "APs", "APm", "APl", "AR100", "params", "flops", "latency_ms", "throughput",
           "timing_under_load", "timing_other_cpu", "timing_loadavg", "train_time_s", "train_img_per_s", "epochs",
           "best_epoch", "best_mAP")
HEAD_COLUMNS = ("sweep", "study", "trial", "status", "reason", "seed")
TAIL_COLUMNS = ("point", "overrides", "config", *METRICS, "pos_per_gt", "gt_without_pos", "pos_per_level", "history",
                "commit", "date", "device", "cpu", "isa", "preset", "dataset", "wandb_dir", "record", "run_dir",
                "checkpoint", "worker", "attempts", "duration_s", "reused_from")

__all__ = ["HEAD_COLUMNS", "METRICS", "TAIL_COLUMNS"]
