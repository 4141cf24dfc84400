"""The config checks that run before any work: what the typed config tree cannot check by itself.

Registry names and their options, the model family's constraints, numeric ranges (:data:`RANGES`),
and names only a library knows (timm backbones, weights files). Each failure is a :class:`ConfigError`
naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A bad override or config file; the message names the key and what is wrong."""


def resolve_assigner(cfg: DictConfig) -> dict:
    """Import the plug-in modules of ``cfg.imports``, then resolve ``assigner.name=auto`` to the model family's
    paper assigner and settings (user options win)."""
    from .models.families import resolve_assigner as family_assigner
    from .plugins import PluginError, import_plugins
    from .registry import UnknownNameError

    try:
        import_plugins(list(cfg.imports))
    except PluginError as e:
        raise ConfigError(str(e)) from None
    try:
        return family_assigner(cfg.model.family, cfg.assigner)
    except UnknownNameError as e:
        raise ConfigError(f"model.family: {e}") from None


def check_config(cfg: DictConfig, model_defaults: dict) -> None:
    """Validate what the type system cannot: registry names and options, value ranges.

    ``model_defaults``: the model config's defaults (a family check tells set keys from defaults).
    """
    from .assigners.base import ASSIGNERS
    from .registry import UnknownNameError

    options = {k: v for k, v in cfg.assigner.items() if k != "name"}
    try:
        ASSIGNERS.check_options(cfg.assigner.get("name", ""), options)
    except UnknownNameError as e:
        raise ConfigError(f"assigner: {e}") from None
    from .models.families import check_family_config

    try:
        check_family_config(cfg.model, cfg.assigner.name, options, defaults=model_defaults)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not 0 < cfg.model.width <= 4:
        raise ConfigError(f"model.width must be in (0, 4], got {cfg.model.width}")
    if cfg.data.img_size < 32 or cfg.data.img_size % 32:
        raise ConfigError(f"data.img_size must be a positive multiple of 32 (the largest stride), "
                          f"got {cfg.data.img_size}")
    if cfg.wandb.mode not in ("offline", "online", "disabled"):
        raise ConfigError(f"wandb.mode must be offline, online or disabled, got {cfg.wandb.mode!r}")
    check_ranges(cfg)
    if cfg.trainer.max_time is not None and cfg.trainer.check_val_every_n_epoch != 1:
        raise ConfigError("trainer.max_time needs trainer.check_val_every_n_epoch=1: a budget may end the run in "
                          "any epoch, and that epoch's validation gives the final metrics")
    check_names(cfg)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# key -> (test, rule): the numeric ranges a run needs, checked before anything trains.
RANGES = {
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    "data.num_train": (lambda v: v >= 1, ">= 1"),
    "data.num_val": (lambda v: v >= 1, ">= 1"),
    "data.gen_seed": (lambda v: v >= 0, ">= 0"),
    "data.distort": (lambda v: 0 <= v <= 200, "in [0, 200] (percent)"),
    "data.flip": (lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    "data.color_jitter": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "data.scale": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.translate": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.mosaic": (lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    "data.num_workers": (lambda v: v is None or v >= 0, ">= 0"),
    "data.jitter_on": (lambda v: v in ("loader", "device"), "loader or device"),
    "model.prior_scale": (lambda v: v > 0, "> 0"),
    "model.freeze": (lambda v: v >= 0, ">= 0 (a backbone stride, or 0 for none)"),
    "model.num_anchors": (lambda v: 1 <= v <= 16, "in 1..16"),
    "optim.lr": (lambda v: 0 < v < 10, "in (0, 10)"),
    "optim.weight_decay": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "optim.momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "optim.warmup": (lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "optim.ema_decay": (lambda v: 0 <= v < 1, "in [0, 1) (0 disables the EMA)"),
    "trainer.max_epochs": (lambda v: v >= 1, ">= 1"),
    "trainer.max_time": (lambda v: v is None or _is_duration(v), "a duration such as 10m, 90s or 1.5h, or null"),
    "trainer.batch_size": (lambda v: v >= 1, ">= 1"),
    "trainer.compile": (lambda v: v is None or v in COMPILE_MODES, "null or a torch.compile mode: "
                        + ", ".join(COMPILE_MODES)),
    "trainer.accumulate_grad_batches": (lambda v: v >= 1, ">= 1"),
    "trainer.gradient_clip_val": (lambda v: v >= 0, ">= 0 (0 disables clipping)"),
    "trainer.limit_train_batches": (lambda v: v > 0, "> 0 (a fraction, or a number of batches)"),
    "trainer.limit_val_batches": (lambda v: v > 0, "> 0 (a fraction, or a number of batches)"),
    "trainer.check_val_every_n_epoch": (lambda v: v >= 1, ">= 1"),
    "trainer.log_every_n_steps": (lambda v: v >= 1, ">= 1"),
    "eval.score_thresh": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eval.iou_thresh": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "eval.max_det": (lambda v: v >= 1, ">= 1"),
    "eval.latency_batches": (lambda v: v >= 1, ">= 1"),
    "eval.timing_threads": (lambda v: v >= 1, ">= 1"),
    **{f"loss.{k}": (lambda v: v >= 0, ">= 0") for k in ("cls", "box", "dfl", "obj", "noobj")},
}


def _is_duration(value: Any) -> bool:
    from .time_budget import parse_duration

    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def check_ranges(cfg: DictConfig) -> None:
    """Every numeric value in its range (a NaN is in none), so a bad one fails now, not mid-training."""
    for key, (ok, rule) in RANGES.items():
        value = OmegaConf.select(cfg, key)
        if not ok(value) or value != value:  # value != value: NaN
            raise ConfigError(f"{key} must be {rule}, got {value}")


def check_names(cfg: DictConfig) -> None:
    """The names only a registry knows: dataset, optimizer, IoU loss, timm backbone (no download), weights file."""
    from .data.registry import list_datasets

    if cfg.data.name not in list_datasets():
        raise ConfigError(f"data.name: unknown dataset {cfg.data.name!r}; valid: {', '.join(list_datasets())}")
    if cfg.optim.name not in ("adamw", "sgd"):
        raise ConfigError(f"optim.name must be adamw or sgd, got {cfg.optim.name!r}")
    if cfg.loss.iou_type not in ("iou", "giou", "ciou"):
        raise ConfigError(f"loss.iou_type must be iou, giou or ciou, got {cfg.loss.iou_type!r}")
    import timm

    from .models import darknet  # noqa: F401  (registers darknet_small / darknet_tiny with timm)

    if not timm.is_model(cfg.model.backbone):
        close = timm.list_models(f"*{cfg.model.backbone[:4]}*")[:8] if cfg.model.backbone else []
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ConfigError(f"model.backbone: {cfg.model.backbone!r} is not a timm model (list them with "
                          f"timm.list_models('*resnet*'); yolozoo adds darknet_small, darknet_tiny){hint}")
    from .models.pretrained import parse_pretrained

    try:
        weights = parse_pretrained(cfg.model.pretrained)
    except (ValueError, RuntimeError) as e:  # WeightsError: model.pretrained=true
        raise ConfigError(str(e)) from None
    if weights is not None and weights != "imagenet" and not Path(weights).is_file():
        raise ConfigError(f"model.pretrained: no such weights file {weights} (use false, imagenet or a path)")
