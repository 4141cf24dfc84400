"""What a sweep will cost before it starts: its wall time on this machine.

From the sweep's own records on this CPU model when there are some (the median point's wall
time: training, validation, setup and the timing pass), else from a short calibration: a few
training steps of the first point's model on synthetic batches, scaled to the point's images
(a lower bound: validation and setup come on top).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from ..environment import cpu_info
from .published import records_frame


@dataclass(frozen=True)
class Estimate:
    seconds: float  # for the points left
    how: str  # where the figure comes from, for the banner
    lower_bound: bool = False


def from_records(records: list[dict], points_left: int, cpu_model: str | None = None) -> Estimate | None:
    """Points left x the median wall time of the completed records taken on this CPU model (None if none)."""
    cpu_model = cpu_model or cpu_info()["model"]
    df = records_frame(records, "", [])
    done = df[(df["status"] == "completed") & (df["cpu"] == cpu_model)]["duration_s"].dropna()
    if done.empty:
        return None
    median = statistics.median(done)
    return Estimate(points_left * median, f"median of {len(done)} recorded point(s) on this CPU: {median:.0f} s")


def synthetic_batch(batch_size: int, img_size: int, num_classes: int, boxes: int = 4, seed: int = 0) -> dict:
    """A batch in the collate format (uint8 images, xyxy px boxes of 12-64 px) for timing only."""
    g = torch.Generator().manual_seed(seed)
    wh = torch.randint(12, 65, (batch_size, boxes, 2), generator=g).float()
    xy = torch.rand(batch_size, boxes, 2, generator=g) * (img_size - wh)
    return {"images": torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8, generator=g),
            "gt_boxes": torch.cat([xy, xy + wh], -1),
            "gt_labels": torch.randint(0, num_classes, (batch_size, boxes), generator=g),
            "gt_mask": torch.ones(batch_size, boxes, dtype=torch.bool)}


def train_images_per_second(module, batch: dict, steps: int = 4) -> float:
    """Images/s of ``module``'s training step (forward, assignment, loss, backward, AdamW step) on ``batch``."""
    from ..losses import weighted_sum

    opt = torch.optim.AdamW(module.model.parameters(), lr=1e-4)
    module.train()

    def step() -> None:
        out = module.model(module.images(batch))
        assign = module.assigner(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors,
                                 batch["gt_labels"], batch["gt_boxes"], batch["gt_mask"])
        weighted_sum(module.loss(out.cls_logits, out.boxes, assign, **out.extras), module.loss_weights).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch["images"].shape[0] / (time.perf_counter() - t0)


def from_calibration(cfg, points_left: int, num_classes: int = 10) -> Estimate:
    """Points left x (the point's training images / images per second of a few synthetic training steps)."""
    from omegaconf import OmegaConf

    from ..train import build_module

    if cfg.model.get("anchors") == "auto":  # k-means anchors need the dataset; any anchors cost the same
        cfg = OmegaConf.merge(cfg, {"model": {"anchors": "yolov5"}})
    module = build_module(cfg, num_classes)
    bs = cfg.trainer.batch_size
    ips = train_images_per_second(module, synthetic_batch(bs, cfg.data.img_size, num_classes))
    images = cfg.data.num_train // bs * bs * cfg.trainer.max_epochs if cfg.data.name == "digits" else None
    if not images:
        return Estimate(float("nan"), f"calibration: {ips:.0f} training img/s (images per point unknown)", True)
    return Estimate(points_left * images / ips, f"calibration: {ips:.0f} training img/s x {images} images a point; "
                    "validation and setup come on top", lower_bound=True)


__all__ = ["Estimate", "from_calibration", "from_records", "synthetic_batch", "train_images_per_second"]
