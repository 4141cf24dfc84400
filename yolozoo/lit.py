"""The thin LightningModule: parts are passed in; it wires them and logs train/ and val/."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

from .assigners.stats import assignment_stats
from .data.transforms import color_jitter_batch, letterbox_scale
from .evaluation import evaluate_detections
from .losses import weighted_sum
from .postprocess import postprocess

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs


class DetectorModule(L.LightningModule):
    """Trains ``model`` with ``assigner`` + ``loss``; validates with COCO mAP.

    Args:
        model: a :class:`~yolozoo.models.Detector`.
        assigner: a label assigner (see :mod:`yolozoo.assigners`).
        loss: callable ``(cls_logits, boxes, assign, **out.extras) -> dict`` of unweighted terms.
        loss_weights: weight per term name.
        optim: ``name`` (adamw|sgd), ``lr``, ``weight_decay``, ``momentum``, ``warmup``.
        postprocess_kw: ``score_thresh``, ``iou_thresh``, ``max_det`` for validation.
        img_size: letterboxed input size (maps predictions back to the original images).
        channels_last: keep conv weights and input images in NHWC memory layout (same numbers, faster
            convolutions on CPU and on GPU tensor cores).
        compile_mode: ``None`` (eager), or the ``torch.compile`` mode the training steps run the model in
            (``default``, ``reduce-overhead``: CUDA graphs, ...). Compiled at the first training step, it is the
            same model and weights: checkpoints, the EMA's copy and validation (eager) see no difference.
        batch_jitter: colour jitter strength applied to each training batch on its device (0: none; the
            loader's transforms jitter instead). See :func:`~yolozoo.data.transforms.color_jitter_batch`.
        hparams: plain data saved in every checkpoint as ``hyper_parameters`` (the resolved config,
            classes, anchors: see :func:`yolozoo.checkpoint.checkpoint_hparams`); not sent to the logger.
    """

    def __init__(self, model: nn.Module, assigner, loss, loss_weights: dict, optim: dict,
                 postprocess_kw: dict, img_size: int, channels_last: bool = False, batch_jitter: float = 0.0,
                 hparams: dict | None = None, compile_mode: str | None = None):
        super().__init__()
        if hparams:
            self.save_hyperparameters(hparams, logger=False)
        self.channels_last, self.batch_jitter, self.compile_mode = channels_last, batch_jitter, compile_mode
        self._compiled = None  # the compiled model (train_model), made at the first training step
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model, self.assigner, self.loss = model, assigner, loss
        self.loss_weights, self.optim = loss_weights, optim
        self.postprocess_kw, self.img_size = postprocess_kw, img_size
        self._val_preds: list[dict] = []
        self.val_metrics: dict = {}  # the last validation's full metrics (incl. per class)

    def forward(self, images):
        return self.model(images)

    def images(self, batch: dict) -> torch.Tensor:
        """The batch's images in the model's memory layout."""
        if self.channels_last:
            return batch["images"].contiguous(memory_format=torch.channels_last)
        return batch["images"]

    def train_model(self) -> nn.Module:
        """The model as training steps call it: ``self.model``, or with ``compile_mode`` its ``torch.compile``
        wrapper (made on first use). The wrapper is kept outside the module's children, so the state dict's
        keys stay the model's own. Called once per training step: in CUDA-graph modes it marks the step's start."""
        if self.compile_mode is None:
            return self.model
        if self._compiled is None:
            mode = None if self.compile_mode == "default" else self.compile_mode
            # dynamic=False: one graph per input shape (a new shape compiles anew rather than symbolically)
            object.__setattr__(self, "_compiled", torch.compile(self.model, mode=mode, dynamic=False))  # not a child
        if self.compile_mode in CUDA_GRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()  # a new step: the last step's graph outputs may be reused
        return self._compiled

    def __getstate__(self) -> dict:
        """Copies (the EMA's ``deepcopy``) and pickles leave the compiled wrapper out: it calls this module's
        model, not the copy's."""
        state = super().__getstate__()
        state["_compiled"] = None
        return state

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.batch_jitter > 0 and self.trainer.training:
            batch["images"] = color_jitter_batch(batch["images"], self.batch_jitter)
        return batch

    def training_step(self, batch, batch_idx):
        out = self.train_model()(self.images(batch))
        assign = self.assigner(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors,
                               batch["gt_labels"], batch["gt_boxes"], batch["gt_mask"])
        terms = self.loss(out.cls_logits, out.boxes, assign, **out.extras)
        total = weighted_sum(terms, self.loss_weights)
        # Reading the loss back makes the CPU wait for the device: on a GPU, check at the logging interval
        # only (a non-finite loss spoils the weights, so it is still caught, a few steps late).
        check = total.device.type == "cpu" or self.global_step % self.trainer.log_every_n_steps == 0
        if check and not torch.isfinite(total):
            parts = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            raise FloatingPointError(
                f"loss is {total.item()} at epoch {self.current_epoch}, step {self.global_step} ({parts}); "
                "try a lower optim.lr or trainer.precision=32-true"
            )
        bs = batch["images"].shape[0]
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=False, on_epoch=True,
                      batch_size=bs)
        stats = assignment_stats(assign, batch["gt_mask"], out.priors)
        self.log_dict({f"train/assign/{k}": v for k, v in stats.items()}, on_step=False, on_epoch=True,
                      batch_size=bs)
        return total

    def validation_step(self, batch, batch_idx):
        out = self.model(self.images(batch))
        dets = postprocess(out.cls_logits, out.boxes, **self.postprocess_kw)
        for det, image_id, (h, w) in zip(dets, batch["image_ids"].tolist(), batch["orig_sizes"].tolist()):
            boxes = det["boxes"] / letterbox_scale(h, w, self.img_size)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            self._val_preds.append({"image_id": image_id, "boxes": boxes.cpu(), "scores": det["scores"].cpu(),
                                    "labels": det["labels"].cpu()})

    def on_validation_epoch_start(self):
        self._val_preds = []

    def on_validation_epoch_end(self):
        preds = self._val_preds
        if self.trainer.world_size > 1:  # every rank evaluated a shard: gather them all
            gathered = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, preds)
            # DistributedSampler pads with repeated images: keep one prediction per image
            preds = list({p["image_id"]: p for part in gathered for p in part}.values())
        dataset = self.trainer.datamodule.val_dataset
        metrics = evaluate_detections(dataset.coco_gt(), preds, dataset.classes)
        self.val_metrics = metrics
        scalars = {f"val/{k}": float(v) for k, v in metrics.items() if isinstance(v, float) and v == v}
        self.log("val/mAP50", scalars.pop("val/mAP50"), prog_bar=True, rank_zero_only=True)
        self.log_dict(scalars, rank_zero_only=True)
        self._val_preds = []

    def configure_optimizers(self):
        # Lightning's mixed precision (fp16 with its GradScaler, bf16) refuses to clip the gradients of a fused
        # optimizer, which would unscale fp16 gradients in its own step, after the clipping: not fused there
        amp = isinstance(self.trainer.precision_plugin, MixedPrecision)
        opt = make_optimizer(self.model, self.optim, fused=not amp)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.optim["lr"], total_steps=max(int(self.trainer.estimated_stepping_batches), 1),
            pct_start=self.optim["warmup"], cycle_momentum=False,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def make_optimizer(model: nn.Module, optim: dict, fused: bool = True) -> torch.optim.Optimizer:
    """``optim.name`` (adamw or sgd) over ``model``'s trainable parameters, without weight decay on norms and biases.

    PyTorch's fused kernel (one per step, not one per parameter) where the parameters' device has one and ``fused``:
    on a 2-core AMD EPYC, AdamW's step over the default run's 2.66 M trainable parameters took 3.1 ms instead of
    10.4 ms (2026-11-26). The same update up to float rounding. ``fused=False``: PyTorch's default implementation.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)  # no decay on norms and biases
    groups = [{"params": decay, "weight_decay": optim["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = fused and all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    name = optim["name"]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=optim["lr"], fused=fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=optim["lr"], momentum=optim["momentum"], nesterov=True, fused=fused)
    raise ValueError(f"optim.name must be adamw or sgd, got {name!r}")
