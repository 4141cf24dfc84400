"""What a search optimizes: one recorded metric of a trial's run, maximized or minimized.

``objective: {metric: mAP, direction: maximize}`` in a search file (``metric=`` and
``direction=`` on the command line override it). The metric is any key of a run record's
``metrics``; the validation metrics are also logged after every epoch as ``val/<metric>``,
which is what a pruner compares between trials. A misspelled metric fails before training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..evaluation import SUMMARY_KEYS
from ..sweep.columns import METRICS
from .params import SearchError

# Logged as val/<metric> after every validation: these can feed a pruner.
PER_EPOCH = tuple(SUMMARY_KEYS)
# The better direction, where it is obvious; other metrics need an explicit direction.
DEFAULT_DIRECTION = {**{m: "maximize" for m in (*SUMMARY_KEYS, "best_mAP", "throughput", "train_img_per_s")},
                     **{m: "minimize" for m in ("params", "flops", "latency_ms", "train_time_s")}}
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Objective:
    """``metric``: a key of the run record's ``metrics``; ``direction``: maximize | minimize."""

    metric: str = "mAP"
    direction: str = "maximize"

    @property
    def per_epoch(self) -> bool:
        """Whether the metric is measured after every epoch (and so can be pruned on)."""
        return self.metric in PER_EPOCH

    @property
    def label(self) -> str:
        return f"val {self.metric}" if self.per_epoch else self.metric


def parse_objective(data: Any, where: str, metric: str | None = None, direction: str | None = None) -> Objective:
    """Check ``objective:`` of a search file; ``metric``/``direction`` (command line) override it."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SearchError(f"{where}: objective must be a mapping {{metric: mAP, direction: maximize}}, got {data!r}")
    unknown = [k for k in data if k not in ("metric", "direction")]
    if unknown:
        raise SearchError(f"{where}: objective: unknown key {unknown[0]!r}; valid: metric, direction")
    metric = metric or data.get("metric", "mAP")
    if metric not in METRICS:
        raise SearchError(f"{where}: objective metric {metric!r} is not a recorded metric; valid: {', '.join(METRICS)}")
    file_direction = data.get("direction") if data.get("metric", "mAP") == metric else None
    direction = direction or file_direction or DEFAULT_DIRECTION.get(metric)
    if direction is None:
        raise SearchError(f"{where}: objective metric {metric!r} needs a direction (maximize or minimize)")
    if direction not in DIRECTIONS:
        raise SearchError(f"{where}: objective direction must be maximize or minimize, got {direction!r}")
    return Objective(metric, direction)
