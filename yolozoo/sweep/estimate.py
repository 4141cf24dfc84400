"""What a sweep will cost before it starts, on this machine: from the sweep's own records on this CPU model, else
from a few training steps of the first point's model on synthetic batches (a lower bound)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..environment import cpu_info
from ..record import duration_s, record_columns
from ..train_speed import synthetic_batch, train_images_per_second


@dataclass(frozen=True)
class Estimate:
    seconds: float  # for the points left
    how: str  # where the figure comes from, for the banner
    lower_bound: bool = False


def from_records(records: list[dict], points_left: int, cpu_model: str | None = None) -> Estimate | None:
    """Points left x the median wall time of the completed records taken on this CPU model (None if none)."""
    model = cpu_model or cpu_info()["model"]
    done = [d for r in records if r.get("status") == "completed" and record_columns(r)["cpu"] == model
            and (d := duration_s(r)) is not None]
    if not done:
        return None
    median = statistics.median(done)
    return Estimate(points_left * median, f"median of {len(done)} recorded point(s) on this CPU: {median:.0f} s")


def from_calibration(cfg, points_left: int, num_classes: int = 10) -> Estimate:
    """Points left x (the point's training images / images per second of a few synthetic training steps)."""
    from omegaconf import OmegaConf

    from ..train import build_module

    if cfg.model.get("anchors") == "auto":  # k-means anchors need the dataset; any anchors cost the same
        cfg = OmegaConf.merge(cfg, {"model": {"anchors": "yolov5"}})
    bs = cfg.trainer.batch_size
    ips = train_images_per_second(build_module(cfg, num_classes), synthetic_batch(bs, cfg.data.img_size, num_classes))
    images = cfg.data.num_train // bs * bs * cfg.trainer.max_epochs if cfg.data.name == "digits" else None
    if not images:
        return Estimate(float("nan"), f"calibration: {ips:.0f} training img/s (images per point unknown)", True)
    return Estimate(points_left * images / ips, f"calibration: {ips:.0f} training img/s x {images} images a point; "
                    "validation and setup come on top", lower_bound=True)
