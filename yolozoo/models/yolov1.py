"""YOLOv1 (Redmon et al., "You Only Look Once", CVPR 2016): an S x S x (B * 5 + C) grid head and its loss.

Model: the backbone's stride-32 map, ``round(4 * depth)`` 3x3 convs (the paper's four added
conv layers; Conv-BN-LeakyReLU(0.1), BatchNorm arriving only with YOLOv2), average-pooled to
``S x S`` when it is not already, then the paper's two fully connected layers (``4096 * width``
units, LeakyReLU, dropout 0.5) to ``S * S * (B * 5 + C)`` linear outputs. Per cell ``(i, j)``:

- B boxes ``(x, y, sqrt_w, sqrt_h, conf)``: ``(x, y)`` the centre's offset from the cell's
  top-left corner in cells, ``sqrt_w, sqrt_h`` the square roots of the box size as fractions
  of the image (the paper predicts the square root), ``conf`` = Pr(object) * IoU;
- C conditional class probabilities Pr(class | object), shared by the cell's B boxes.

As in the paper every output is linear (no sigmoid / softmax); decoding squares ``sqrt_w``.
For the harness's contract each of the ``A = S * S * B`` box predictors is a prior (the B of
a cell adjacent, one pyramid level of stride ``H / S``, square inputs), and its class score
is the paper's class-specific confidence ``Pr(class | object) * conf``, both clamped to
[0, 1], returned as logits (so ``sigmoid(cls_logits)`` is that score for NMS and the assigner).

Loss (:class:`YOLOv1Loss`, eq. 3 of the paper): sum-squared error, its weights
``lambda_coord = 5`` and ``lambda_noobj = 0.5`` living in config as the ``box`` and ``noobj``
term weights.

Training: the wide FC layers diverge under AdamW at the harness's default ``optim.lr=0.004``
(the paper, too, reports divergence at high learning rates); ``optim.lr=0.001``, the paper's
starting rate, trains.
"""

from __future__ import annotations

import torch
from torch import nn

from ..assigners.base import AssignResult, Priors
from ..box_ops import aligned_iou
from .backbone import TimmBackbone
from .darknet import ConvBnAct
from .detector import DetectorOutput, make_priors
from .layers import scaled_channels


class YOLOv1(nn.Module):
    """Backbone -> conv layers -> S x S grid -> two FC layers -> S x S x (B * 5 + C).

    Args:
        backbone: a :class:`TimmBackbone` (its stride-32 map is used).
        num_classes: C.
        grid_size: S (7 in the paper).
        boxes_per_cell: B (2 in the paper).
        width: multiplies the conv channels (1024) and the hidden FC units (4096).
        depth: multiplies the number of added 3x3 convs (4).
        prior_scale: side of each predictor's square prior box in strides (only prior-box
            assigners such as ATSS read it; YOLOv1 has no anchors).
        dropout: after the first FC layer (0.5 in the paper).

    ``forward(images [B, 3, H, W] 0..255, H == W) -> DetectorOutput`` (module docstring) with
    ``extras``: ``coords [B, A, 4]`` (x, y, sqrt_w, sqrt_h) as predicted, ``conf [B, A]``,
    ``cls_prob [B, S * S, C]``, ``priors`` and ``image_size`` (H, W), for :class:`YOLOv1Loss`.
    """

    def __init__(self, backbone: TimmBackbone, num_classes: int, grid_size: int = 7, boxes_per_cell: int = 2,
                 width: float = 1.0, depth: float = 1.0, prior_scale: float = 4.0, dropout: float = 0.5):
        super().__init__()
        if grid_size < 1 or boxes_per_cell < 1:
            raise ValueError(f"YOLOv1 needs grid_size >= 1 and boxes_per_cell >= 1, got {grid_size}, {boxes_per_cell}")
        self.backbone, self.num_classes = backbone, num_classes
        self.S, self.B, self.prior_scale = grid_size, boxes_per_cell, prior_scale
        c, hidden = scaled_channels(1024, width), scaled_channels(4096, width)
        cin = backbone.channels[-1]
        self.convs = nn.Sequential(*(ConvBnAct(cin if i == 0 else c, c, 3) for i in range(max(round(4 * depth), 1))))
        self.pool = nn.AdaptiveAvgPool2d(grid_size)
        per_cell = boxes_per_cell * 5 + num_classes
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * grid_size ** 2, hidden), nn.LeakyReLU(0.1, inplace=True),
                                nn.Dropout(dropout), nn.Linear(hidden, grid_size ** 2 * per_cell))
        # Start near "no object, centred, ~1/10 of the image" so early boxes are sane (our choice).
        out = self.fc[-1]
        nn.init.normal_(out.weight, std=0.01)
        bias = torch.zeros(per_cell)
        box_bias = torch.tensor([0.5, 0.5, 0.3, 0.3, 0.0]).repeat(boxes_per_cell)
        bias[: 5 * boxes_per_cell] = box_bias
        bias[5 * boxes_per_cell:] = 1.0 / num_classes
        with torch.no_grad():
            out.bias.copy_(bias.repeat(grid_size ** 2))

    def forward(self, images: torch.Tensor) -> DetectorOutput:
        N, _, H, W = images.shape
        if H != W:
            raise ValueError(f"YOLOv1 takes square (letterboxed) inputs, got {H}x{W}")
        S, K, C = self.S, self.B, self.num_classes
        x = (images.float() - self.backbone.mean) / self.backbone.std
        grid = self.pool(self.convs(self.backbone(x)[-1]))  # [N, c, S, S]
        out = self.fc(grid).view(N, S * S, 5 * K + C)  # row-major cells
        box = out[..., : 5 * K].reshape(N, S * S * K, 5)  # [N, A, 5], the K of a cell adjacent
        cls_prob = out[..., 5 * K:]  # [N, S*S, C]
        coords, conf = box[..., :4], box[..., 4]
        priors = self.priors(H, device=images.device)
        stride = priors.strides[:, None]
        xy = priors.centers - stride / 2 + coords[..., :2] * stride
        wh = coords[..., 2:].square() * coords.new_tensor([W, H])
        boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
        score = cls_prob.clamp(0, 1).repeat_interleave(K, 1) * conf.clamp(0, 1)[..., None]  # [N, A, C]
        extras = {"coords": coords, "conf": conf, "cls_prob": cls_prob, "priors": priors, "image_size": (H, W)}
        return DetectorOutput(torch.logit(score, eps=1e-6), boxes, priors, extras=extras)

    def priors(self, img_size: int, device=None) -> Priors:
        """S x S cells of stride ``img_size / S``, B predictors per cell, square prior boxes of ``prior_scale`` strides.

        Returned level by level (one level), row-major cells, the B of a cell adjacent.
        """
        s = img_size / self.S
        return make_priors([(self.S, self.S)], [s], anchors=[[(self.prior_scale * s,) * 2] * self.B], device=device)


class YOLOv1Loss:
    """YOLOv1's sum-squared error (Redmon et al. 2016, eq. 3), as four unweighted terms.

    ``loss(cls_logits, boxes [B, A, 4] xyxy px, assign, coords, conf, cls_prob, priors, image_size)``
    with the extras of :class:`YOLOv1` -> ``{"box", "obj", "noobj", "cls"}``; each is summed over
    an image and averaged over the batch. A predictor is *responsible* for a GT where
    ``assign.fg_mask`` (the ``yolov1`` assigner reproduces the paper's rule; any assigner works):

    - ``box`` (weight lambda_coord): ``(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2``
      on responsible predictors, the target centre as an offset from the predictor's cell in
      cells, the target size as a fraction of the image;
    - ``obj``: ``(conf - IoU)^2`` on responsible predictors, IoU = that of the predicted box
      with its GT (no gradient through the IoU): the paper's confidence target;
    - ``noobj`` (weight lambda_noobj): ``conf^2`` on every other predictor;
    - ``cls``: ``sum_c (p_c - p^_c)^2`` on cells holding a responsible predictor, the target
      one-hot (several GT in one cell: the union of their classes).
    """

    def __call__(self, cls_logits: torch.Tensor, boxes: torch.Tensor, assign: AssignResult, coords: torch.Tensor,
                 conf: torch.Tensor, cls_prob: torch.Tensor, priors: Priors, image_size: tuple[int, int]) -> dict:
        fg = assign.fg_mask  # [N, A]
        N, A = fg.shape
        cells, C = cls_prob.shape[1:]
        K = A // cells
        conf, coords, cls_prob = conf.float(), coords.float(), cls_prob.float()
        noobj = conf.square().masked_fill(fg, 0).sum() / N
        target_cls = torch.zeros(N, A, C, device=fg.device)
        target_cls[fg] = nn.functional.one_hot(assign.labels[fg], C).float()
        target_cls = target_cls.view(N, cells, K, C).amax(2)  # [N, cells, C]
        has_obj = fg.view(N, cells, K).any(-1)
        cls = (cls_prob - target_cls).square().sum(-1)[has_obj].sum() / N
        if not fg.any():
            zero = coords.sum() * 0.0  # keeps the graph connected
            return {"box": zero, "obj": zero.clone(), "noobj": noobj, "cls": cls}
        a = fg.nonzero()[:, 1]
        gt = assign.boxes[fg].float()  # [P, 4] xyxy px
        stride = priors.strides[a, None].float()
        origin = priors.centers[a].float() - stride / 2  # the cell's top-left corner
        target_xy = ((gt[:, :2] + gt[:, 2:]) / 2 - origin) / stride
        H, W = image_size
        target_wh = ((gt[:, 2:] - gt[:, :2]).clamp(min=0) / gt.new_tensor([W, H])).sqrt()
        box = (coords[fg] - torch.cat([target_xy, target_wh], -1)).square().sum() / N
        iou = aligned_iou(boxes[fg].detach(), gt, "iou")
        obj = (conf[fg] - iou).square().sum() / N
        return {"box": box, "obj": obj, "noobj": noobj, "cls": cls}
