"""A W&B image panel of sample predictions, logged once at the end of training."""

from __future__ import annotations

import logging

import torch
from lightning.pytorch.callbacks import Callback

from .postprocess import postprocess

log = logging.getLogger(__name__)


def _boxes(boxes: torch.Tensor, labels: torch.Tensor, classes: list[str], scores: torch.Tensor | None = None) -> dict:
    """W&B box data: xyxy pixel boxes [N, 4], labels [N] (and scores [N]) -> ``{"box_data", "class_labels"}``."""
    data = []
    for i, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
        item = {"position": {"minX": box[0], "minY": box[1], "maxX": box[2], "maxY": box[3]}, "domain": "pixel",
                "class_id": int(label), "box_caption": classes[label]}
        if scores is not None:
            item["scores"] = {"score": float(scores[i])}
            item["box_caption"] = f"{classes[label]} {float(scores[i]):.2f}"
        data.append(item)
    return {"box_data": data, "class_labels": dict(enumerate(classes))}


class PredictionPanel(Callback):
    """Logs ``val/predictions``: the first ``num_images`` val images with predicted and true boxes.

    Runs on rank 0 after training (so with the EMA weights the run reports), only when the
    run logs to W&B. Predictions above ``score_thresh`` after NMS are drawn as the
    ``predictions`` box group, ground truth as ``ground_truth`` (toggle them in the W&B UI).
    Any error is logged as a warning: a panel never fails a run.
    """

    def __init__(self, num_images: int = 8, score_thresh: float = 0.3, key: str = "val/predictions"):
        self.num_images, self.score_thresh, self.key = num_images, score_thresh, key

    def on_fit_end(self, trainer, pl_module) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if not trainer.is_global_zero or not isinstance(trainer.logger, WandbLogger) or self.num_images <= 0:
            return
        try:
            images = self.render(pl_module, trainer.datamodule.val_dataset)
            trainer.logger.experiment.log({self.key: images})
        except Exception as e:
            log.warning("W&B prediction panel failed (%s: %s); the run goes on", type(e).__name__, e)

    @torch.no_grad()
    def render(self, pl_module, dataset) -> list:
        """``wandb.Image`` list for the first images of ``dataset`` (val transforms: letterboxed uint8)."""
        import wandb

        samples = [dataset[i] for i in range(min(self.num_images, len(dataset)))]
        images = torch.stack([image.as_subclass(torch.Tensor) for image, _ in samples])  # uint8 [B, 3, S, S]
        was_training = pl_module.training
        pl_module.eval()
        try:
            out = pl_module(images.to(pl_module.device))
            kw = dict(pl_module.postprocess_kw, score_thresh=max(self.score_thresh, pl_module.postprocess_kw.get(
                "score_thresh", 0.0)))
            dets = postprocess(out.cls_logits, out.boxes, **kw)
        finally:
            pl_module.train(was_training)
        classes = list(dataset.classes)
        panel = []
        for (image, target), det in zip(samples, dets):
            boxes = {"predictions": _boxes(det["boxes"].cpu(), det["labels"].cpu(), classes, det["scores"].cpu()),
                     "ground_truth": _boxes(target["boxes"].as_subclass(torch.Tensor), target["labels"], classes)}
            panel.append(wandb.Image(image.permute(1, 2, 0).numpy(), boxes=boxes,
                                     caption=f"image {int(target['image_id'])}: {len(det['boxes'])} detections"))
        return panel
