"""Training speed on synthetic batches: how many images per second a module's training step takes.

Used for a sweep's wall-time estimate before its first point (:mod:`yolozoo.sweep.estimate`).
"""

from __future__ import annotations

import time

import torch

from .lit import make_optimizer
from .losses import weighted_sum


def synthetic_batch(batch_size: int, img_size: int, num_classes: int, boxes: int = 4, seed: int = 0) -> dict:
    """A batch in the collate format (uint8 images [B, 3, S, S], xyxy px boxes [B, boxes, 4] of 12-64 px)."""
    g = torch.Generator().manual_seed(seed)
    wh = torch.randint(12, 65, (batch_size, boxes, 2), generator=g).float()
    xy = torch.rand(batch_size, boxes, 2, generator=g) * (img_size - wh)
    return {"images": torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8, generator=g),
            "gt_boxes": torch.cat([xy, xy + wh], -1),
            "gt_labels": torch.randint(0, num_classes, (batch_size, boxes), generator=g),
            "gt_mask": torch.ones(batch_size, boxes, dtype=torch.bool)}


def train_images_per_second(module, batch: dict, steps: int = 4) -> float:
    """Images/s of ``module``'s training step (forward, assignment, loss, backward, optimizer step) on ``batch``."""
    opt = make_optimizer(module.model, module.optim)  # as training builds it
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


__all__ = ["synthetic_batch", "train_images_per_second"]
