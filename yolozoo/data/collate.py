"""Batching detection samples of different box counts into padded tensors."""

from __future__ import annotations

import torch


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> dict[str, torch.Tensor]:
    """Stack ``(image, target)`` samples (the sample format, after transforms) into a batch.

    Returns (B = batch size, S = image side, M = most boxes in one sample, possibly 0):
        images:       uint8 [B, 3, S, S]; every sample must have the same size
        gt_boxes:     float32 [B, M, 4] xyxy pixels of the transformed image; padding is 0
        gt_labels:    int64 [B, M]; padding is 0
        gt_mask:      bool [B, M]; True for real boxes that are not ``difficult``
        gt_difficult: bool [B, M]; True for real ``difficult`` boxes (neither positive nor miss)
        image_ids:    int64 [B]
        orig_sizes:   int64 [B, 2] (H0, W0) before transforms
    """
    if not batch:
        raise ValueError("collate_detection: empty batch")
    sizes = [tuple(image.shape) for image, _ in batch]
    if len(set(sizes)) > 1:
        ids = [target.get("image_id") for _, target in batch]
        raise ValueError(
            "collate_detection: images in a batch must share one size (add a Letterbox transform); "
            f"got {', '.join(f'{s} (image_id {i})' for s, i in zip(sizes, ids))}"
        )
    b, m = len(batch), max(len(target["boxes"]) for _, target in batch)
    gt_boxes = torch.zeros(b, m, 4, dtype=torch.float32)
    gt_labels = torch.zeros(b, m, dtype=torch.int64)
    real = torch.zeros(b, m, dtype=torch.bool)
    gt_difficult = torch.zeros(b, m, dtype=torch.bool)
    for i, (_, target) in enumerate(batch):
        n = len(target["boxes"])
        gt_boxes[i, :n] = target["boxes"].as_subclass(torch.Tensor)
        gt_labels[i, :n] = target["labels"]
        real[i, :n] = True
        gt_difficult[i, :n] = target["difficult"]
    return {
        "images": torch.stack([image.as_subclass(torch.Tensor) for image, _ in batch]),
        "gt_boxes": gt_boxes,
        "gt_labels": gt_labels,
        "gt_mask": real & ~gt_difficult,
        "gt_difficult": gt_difficult,
        "image_ids": torch.tensor([int(target["image_id"]) for _, target in batch], dtype=torch.int64),
        "orig_sizes": torch.tensor([list(target["orig_size"]) for _, target in batch], dtype=torch.int64),
    }
