"""Raw predictions -> final detections: score threshold, top-k, class-aware NMS."""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms


@torch.no_grad()
def postprocess(
    cls_logits: torch.Tensor,
    boxes: torch.Tensor,
    score_thresh: float = 0.001,
    iou_thresh: float = 0.6,
    max_det: int = 100,
    pre_nms_topk: int = 1000,
) -> list[dict]:
    """cls_logits [B, A, C], boxes [B, A, 4] xyxy -> per image ``{"boxes", "scores", "labels"}``.

    Multi-label: a prior may yield one detection per class scoring above ``score_thresh``.
    NMS runs once for the whole batch through ``torchvision.ops.batched_nms`` keyed by
    (image, class).
    """
    B, A, C = cls_logits.shape
    scores = cls_logits.float().sigmoid().flatten(1)  # [B, A*C]
    k = min(pre_nms_topk, A * C)
    top_scores, top_idx = scores.topk(k, dim=1)  # [B, k]
    keep = top_scores > score_thresh
    img_idx = torch.arange(B, device=boxes.device)[:, None].expand(B, k)[keep]
    cand_scores, flat = top_scores[keep], top_idx[keep]
    labels = flat % C
    cand_boxes = boxes.float()[img_idx, flat // C]
    kept = batched_nms(cand_boxes, cand_scores, img_idx * C + labels, iou_thresh)  # sorted by score
    out = []
    kept_img = img_idx[kept]
    for b in range(B):
        sel = kept[kept_img == b][:max_det]
        out.append({"boxes": cand_boxes[sel], "scores": cand_scores[sel], "labels": labels[sel]})
    return out
