"""Backbone pretraining on a classification dataset (the YOLOv1 authors' route to a detector).

A :class:`BackboneClassifier` is the detector's own :class:`~yolozoo.models.backbone.TimmBackbone`
(same input normalisation) plus global average pooling of the stride-32 map and a linear
layer. It is trained with Lightning on

* ``digits``: the digit boxes cropped from the built-in digits detection scenes, or
* a torchvision ``ImageFolder`` (``PATH/train`` + ``PATH/val`` if both exist, else ``PATH``
  split by ``val_fraction``),

and the backbone's state dict is saved for ``model.pretrained=PATH``. Config is a typed
tree read once by :func:`load_pretrain_config`; ``bench/pretrain.py`` is the command line.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split
from torchvision.transforms.v2 import functional as TF

from .config import ConfigError, _merge, parse_overrides
from .models.backbone import TimmBackbone
from .models.pretrained import save_backbone

log = logging.getLogger(__name__)


@dataclass
class PretrainModelConfig:
    backbone: str = "darknet_small"  # any timm model with features_only (as model.backbone of a detector)
    pretrained: str = "false"  # starting weights: false | imagenet | path


@dataclass
class DigitsSourceConfig:
    num_train: int = 3000  # scenes to crop digits from (about 4.5 digits each)
    num_val: int = 500
    scene_size: int = 128
    gen_seed: int = 0
    root: str | None = None  # scene cache (default data/ or $YOLOZOO_DATA)


@dataclass
class PretrainConfig:
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: str = "digits"  # digits | path to an ImageFolder
    digits: DigitsSourceConfig = field(default_factory=DigitsSourceConfig)
    img_size: int = 32  # classifier input side (digit crops / ImageFolder images are resized to it)
    val_fraction: float = 0.1  # ImageFolder without train/ and val/: share held out for validation
    epochs: int = 4
    max_steps: int = -1  # stop after this many optimizer steps (-1: epochs decide)
    batch_size: int = 128
    lr: float = 0.003
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of steps in the one-cycle warm-up
    seed: int = 0
    num_workers: int = 0
    accelerator: str = "auto"
    progress_bar: bool = True
    out: str | None = None  # default runs/pretrain/<backbone>-<data>.pth


def load_pretrain_config(argv: list[str] | dict[str, str] | None = None) -> DictConfig:
    """Defaults <- ``key=value`` overrides; unknown keys and wrong types raise :class:`ConfigError`."""
    overrides = dict(argv) if isinstance(argv, dict) else parse_overrides(argv or [])
    cfg = OmegaConf.structured(PretrainConfig)
    OmegaConf.set_struct(cfg, True)
    cfg = _merge(cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in overrides.items()]), "command line")
    if cfg.img_size < 32 or cfg.img_size % 32:
        raise ConfigError(f"img_size must be a positive multiple of 32 (the backbone's stride), got {cfg.img_size}")
    if not 0 < cfg.val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {cfg.val_fraction}")
    if cfg.data != "digits" and not Path(cfg.data).is_dir():
        raise ConfigError(f"data must be 'digits' or an ImageFolder directory; {cfg.data!r} is neither")
    if cfg.out is None:
        cfg.out = str(Path("runs") / "pretrain" / f"{cfg.model.backbone}-{Path(cfg.data).name}.pth")
    OmegaConf.set_readonly(cfg, True)
    return cfg


class BackboneClassifier(nn.Module):
    """images uint8/float [B, 3, H, W] in 0..255 -> logits [B, num_classes].

    Normalises like the detector, pools the backbone's stride-32 map [B, C, H/32, W/32] to [B, C].
    """

    def __init__(self, backbone: TimmBackbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.channels[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.backbone.mean) / self.backbone.std
        return self.fc(self.backbone(x)[-1].mean((2, 3)))


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of ``model``; logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``."""

    def __init__(self, model: BackboneClassifier, lr: float, weight_decay: float, warmup: float):
        super().__init__()
        self.model, self.lr, self.weight_decay, self.warmup = model, lr, weight_decay, warmup

    def _step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self.model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=len(labels))
        self.log(f"{stage}/acc", acc, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=len(labels))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=max(int(self.trainer.estimated_stepping_batches), 1),
            pct_start=self.warmup, cycle_momentum=False)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def crop_boxes(image: torch.Tensor, boxes: torch.Tensor, size: int, context: float = 1.2) -> torch.Tensor:
    """Square crops around each box: image uint8 [3, H, W], boxes [N, 4] xyxy px -> uint8 [N, 3, size, size].

    Each crop is ``context`` x the box's longer side, centred on the box (zero-padded at borders).
    """
    crops = []
    for x0, y0, x1, y1 in boxes.tolist():
        side = max(x1 - x0, y1 - y0) * context
        top, left = round((y0 + y1 - side) / 2), round((x0 + x1 - side) / 2)
        crops.append(TF.resized_crop(image, top, left, round(side), round(side), [size, size], antialias=True))
    return torch.stack(crops) if crops else torch.zeros(0, 3, size, size, dtype=torch.uint8)


def digit_crops(split: str, src: DictConfig, size: int) -> tuple[TensorDataset, list[str]]:
    """Every digit box of the digits scenes of ``split`` as (uint8 [3, size, size], label) pairs."""
    from .data.base import read_image
    from .data.registry import create_dataset

    ds = create_dataset("digits", split, src.root, num_train=src.num_train, num_val=src.num_val,
                        img_size=src.scene_size, seed=src.gen_seed)
    images, labels = [], []
    for rec in ds.records:
        images.append(crop_boxes(read_image(rec.file), torch.as_tensor(rec.boxes), size))
        labels.append(torch.as_tensor(rec.labels))
    return TensorDataset(torch.cat(images), torch.cat(labels)), ds.classes


def image_folder(root: Path, size: int, val_fraction: float, seed: int) -> tuple[Dataset, Dataset, list[str]]:
    """An ImageFolder's (train, val, classes); images as uint8 [3, size, size]."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    tf = v2.Compose([v2.PILToTensor(), v2.Resize((size, size), antialias=True)])
    if (root / "train").is_dir() and (root / "val").is_dir():
        train, val = ImageFolder(root / "train", transform=tf), ImageFolder(root / "val", transform=tf)
        if train.classes != val.classes:
            raise ValueError(f"{root}: train/ and val/ have different class folders ({train.classes} vs {val.classes})")
        return train, val, train.classes
    full = ImageFolder(root, transform=tf)
    n_val = max(1, round(len(full) * val_fraction))
    if n_val >= len(full):
        raise ValueError(f"{root}: {len(full)} images are too few to hold out {n_val} for validation")
    train, val = random_split(full, [len(full) - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    return train, val, full.classes


def build_data(cfg: DictConfig) -> tuple[Dataset, Dataset, list[str]]:
    """(train, val, class names) for ``cfg.data``."""
    if cfg.data == "digits":
        train, classes = digit_crops("train", cfg.digits, cfg.img_size)
        val, _ = digit_crops("val", cfg.digits, cfg.img_size)
        return train, val, classes
    return image_folder(Path(cfg.data), cfg.img_size, cfg.val_fraction, cfg.seed)


def pretrain(cfg: DictConfig) -> dict:
    """Train backbone + linear classifier per ``cfg``; save the backbone to ``cfg.out``.

    Returns ``{"out", "val_acc", "num_train", "num_val", "classes", "steps"}``.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    train_set, val_set, classes = build_data(cfg)
    backbone = TimmBackbone(cfg.model.backbone, pretrained=cfg.model.pretrained)
    module = ClassifierModule(BackboneClassifier(backbone, len(classes)), cfg.lr, cfg.weight_decay, cfg.warmup)
    loader = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train_set) > cfg.batch_size, **loader)
    val_loader = DataLoader(val_set, **loader)
    out = Path(cfg.out)
    trainer = L.Trainer(max_epochs=cfg.epochs, max_steps=cfg.max_steps, accelerator=cfg.accelerator, devices=1,
                        logger=False, enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=cfg.progress_bar, num_sanity_val_steps=0,
                        default_root_dir=str(out.parent), log_every_n_steps=10)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        trainer.fit(module, train_loader, val_loader)
        val = trainer.validate(module, val_loader, verbose=False)[0]
    save_backbone(module.model.backbone.body.cpu(), cfg.model.backbone, out, val_acc=float(val["val/acc"]),
                  data=str(cfg.data), steps=int(trainer.global_step))
    return {"out": out, "val_acc": float(val["val/acc"]), "num_train": len(train_set), "num_val": len(val_set),
            "classes": list(classes), "steps": int(trainer.global_step)}
