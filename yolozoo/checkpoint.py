"""Self-describing checkpoints: read one safely, rebuild the config that ran and its detector.

A training checkpoint (``runs/*/checkpoints/*.ckpt``, Lightning format) stores, besides the
weights, ``hyper_parameters`` = :func:`checkpoint_hparams`: the resolved config as plain
data (str/int/float/bool/None/list/dict), the class names and the anchors. So
``bench/export.py``, ``bench/predict.py`` and ``bench/val.py`` need only ``checkpoint=``;
any ``key=value`` given next to it is applied on top of the stored config.

Files are read with ``torch.load(..., weights_only=True)``: a checkpoint that would run code
while unpickling (or needs any class beyond tensors and plain containers) is refused with an
error naming the file, before anything in it runs.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file."""


def checkpoint_hparams(config: dict, classes: list[str], anchors=None) -> dict:
    """What a training checkpoint stores to describe itself (loadable with ``weights_only=True``).

    ``config``: the resolved config as a plain dict; ``anchors``: the anchor head's anchors
    (per level, K ``(w, h)`` px) or None.
    """
    if anchors is not None:
        anchors = torch.as_tensor(anchors, dtype=torch.float).tolist()
    return {"config": config, "classes": [str(c) for c in classes], "num_classes": len(classes), "anchors": anchors}


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at ``path`` as a dict, read with ``weights_only=True`` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint={path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if not found:
            raise CheckpointError(f"{path}: not a readable checkpoint (it does not unpickle)") from None
        raise CheckpointError(f"{path}: refused: the file holds more than weights and plain data ({found[1]}), and "
                              "loading it could run code; nothing in it was run") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a Lightning checkpoint or a state dict, got {type(obj).__name__}")
    return obj


def detector_state(obj: dict) -> dict[str, torch.Tensor]:
    """The detector's state dict: a Lightning checkpoint's ``state_dict`` without ``model.``, or ``obj`` itself."""
    state = obj.get("state_dict", obj)
    if any(k.startswith("model.") for k in state):
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return state


def stored_hparams(obj: dict) -> dict:
    """The :func:`checkpoint_hparams` a training checkpoint stores (``{}`` for a plain state dict)."""
    hparams = obj.get("hyper_parameters")
    return dict(hparams) if isinstance(hparams, dict) else {}


def config_from_checkpoint(path: str | Path, overrides: dict[str, str] | None = None) -> tuple[DictConfig, dict]:
    """The config stored in the checkpoint at ``path`` with ``overrides`` applied on top; and the checkpoint."""
    from .config import load_config

    obj = load_checkpoint(path)
    config = stored_hparams(obj).get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: stores no config (a plain state dict, or a checkpoint from an older "
                              "yolozoo); pass the run's model.* overrides to bench/export.py, or retrain")
    config = {**config, "model": {**config.get("model", {}), "pretrained": "false"}}  # the checkpoint has them all
    return load_config(dict(overrides or {}), base=config, base_origin=f"{path} (stored config)"), obj


def build_detector(cfg: DictConfig, obj: dict, origin: str | Path) -> nn.Module:
    """The detector of ``cfg`` with the checkpoint ``obj``'s weights, loaded strictly (eval mode, CPU).

    Never loads pretrained backbone weights (the checkpoint has them all); the class count and
    anchors come from the checkpoint.
    """
    from omegaconf import OmegaConf

    from .models import build_model

    hparams, state = stored_hparams(obj), detector_state(obj)
    model_cfg = OmegaConf.merge(cfg.model, {"pretrained": "false"})
    anchors = hparams.get("anchors")

    def build(n: int) -> nn.Module:
        return build_model(model_cfg, n, anchors)

    num_classes = hparams.get("num_classes") or infer_num_classes(state, build)
    model = build(int(num_classes))
    load_detector_state(model, state, str(origin))
    return model.eval()


def class_names(obj: dict, num_classes: int) -> list[str]:
    """The class names stored in the checkpoint, or ``"0".."N-1"``."""
    names = stored_hparams(obj).get("classes")
    return list(names) if names and len(names) == num_classes else [str(i) for i in range(num_classes)]


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A detector state dict from a Lightning checkpoint (``state_dict`` with ``model.`` keys) or a plain one.

    Read with ``weights_only=True`` (see :func:`yolozoo.checkpoint.load_checkpoint`): nothing in the file runs.
    """
    return detector_state(load_checkpoint(path))


def infer_num_classes(state: dict[str, torch.Tensor], build: Callable[[int], nn.Module]) -> int:
    """The class count ``state`` was trained with, read off its class-dependent tensors.

    ``build(n)`` makes the detector for ``n`` classes; tensors whose shape differs between
    ``build(1)`` and ``build(2)`` grow linearly with the class count along one dimension.
    """
    one, two = build(1).state_dict(), build(2).state_dict()
    for key, a in one.items():
        b = two[key]
        if a.shape == b.shape or key not in state:
            continue
        dim = next(i for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y)
        per_class = b.shape[dim] - a.shape[dim]
        n, rest = divmod(state[key].shape[dim] - (a.shape[dim] - per_class), per_class)
        if rest or n < 1:
            raise ValueError(f"checkpoint tensor {key!r} {tuple(state[key].shape)} fits no class count; "
                             "is it from a detector with the same model.* settings?")
        return n
    raise ValueError("checkpoint has none of the detector's class-dependent tensors; "
                     "is it from a detector with the same model.* settings?")


def load_detector_state(detector: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Strict load; on a mismatch the error names the file, a key, and the likely cause."""
    result = detector.state_dict()
    if set(state) != set(result):
        state = upgrade_backbone_state(detector, state)
    missing = [k for k in result if k not in state]
    unexpected = [k for k in state if k not in result]
    shape = [k for k in result if k in state and state[k].shape != result[k].shape]
    if missing or unexpected or shape:
        first = (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}" if unexpected else
                 f"{shape[0]!r} is {tuple(state[shape[0]].shape)}, the model's {tuple(result[shape[0]].shape)}")
        raise ValueError(f"{origin}: does not fit the configured detector ({first}; {len(missing)} missing, "
                         f"{len(unexpected)} unexpected, {len(shape)} of another shape); pass the model.* "
                         "overrides the run used")
    detector.load_state_dict(state, strict=True)


def upgrade_backbone_state(detector: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` from before yolozoo streamlined its backbones (2026-11-26: frozen BatchNorms folded into their convs,
    unused later blocks dropped; :func:`yolozoo.models.backbone.streamlined`) as ``detector``'s; ``state`` itself
    where its backbone weights are not a timm body's."""
    prefix = "backbone.body."
    backbone = getattr(detector, "backbone", None)
    if not hasattr(backbone, "state_from_timm"):
        return state
    try:
        body = backbone.state_from_timm({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
    except RuntimeError:  # load_state_dict: not a timm body's weights either
        return state
    return {**{k: v for k, v in state.items() if not k.startswith(prefix)}, **{prefix + k: v for k, v in body.items()}}
