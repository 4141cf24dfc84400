"""Export a detector to ONNX and check onnxruntime against the eager model.

    python bench/export.py checkpoint=PATH [out=model.onnx] [opset=18] [verify=true] [key=value ...]
    python bench/export.py [key=value config overrides] [num_classes=N] [out=model.onnx]

With ``checkpoint`` (a Lightning ``.ckpt`` from ``runs/*/checkpoints/``) nothing else is needed:
the checkpoint stores the config it was trained with, its classes and anchors; a ``key=value``
given next to it applies on top (e.g. ``data.img_size=320`` exports at another size). A plain
detector state dict stores no config: pass the run's ``model.*`` and ``data.img_size`` overrides;
the class count is read off its tensors. Weights load strictly, with ``weights_only=True``.
Without a checkpoint the detector of the config is freshly initialised with ``num_classes``
(default: the dataset's). Graph: ``images`` float32 [B, 3, H, W] 0..255 -> ``cls_logits``
[B, A, C], ``boxes`` [B, A, 4] xyxy px; ``B`` is dynamic.

Exit status: 0 on success; 1 when onnxruntime differs from the eager model; 2 for a bad
option, override or checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError, load_config

TOLERANCE = 1e-4  # max abs difference onnxruntime vs eager, over the output's scale (float32 noise: ~1e-5)
OPTIONS = [
    KeyHelp("checkpoint", None, "a training checkpoint (.ckpt; stores its config) or a detector state dict"),
    KeyHelp("out", "model.onnx", "the ONNX file written"),
    KeyHelp("num_classes", None, "without a checkpoint: the class count (default: the dataset's)"),
    KeyHelp("opset", "18", "ONNX opset version"),
    KeyHelp("verify", "true", "check onnxruntime against the eager model on a random batch"),
]


def _dataset_classes(cfg) -> int:
    if cfg.data.name == "digits":
        from yolozoo.data.digits import DIGITS_CLASSES

        return len(DIGITS_CLASSES)
    from yolozoo.data.registry import create_dataset
    from yolozoo.train import dataset_options

    return len(create_dataset(cfg.data.name, "val", cfg.data.root, **dataset_options(cfg.data)).classes)


def _load(own: dict, overrides: dict):
    """(config, detector) for the options: from the checkpoint's stored config, or from the overrides."""
    import torch

    from yolozoo.checkpoint import (
        build_detector,
        config_from_checkpoint,
        detector_state,
        infer_num_classes,
        load_checkpoint,
        load_detector_state,
    )
    from yolozoo.train import build_module

    num_classes = int(own["num_classes"]) if own["num_classes"] else None
    if own["checkpoint"]:
        obj = load_checkpoint(own["checkpoint"])
        if "hyper_parameters" in obj:
            cfg, obj = config_from_checkpoint(own["checkpoint"], overrides)
            return cfg, build_detector(cfg, obj, own["checkpoint"])
        cfg = load_config(overrides)  # a plain state dict: the overrides describe the detector

        def build(n: int) -> torch.nn.Module:
            return build_module(cfg, n).model

        state = detector_state(obj)
        model = build(num_classes or infer_num_classes(state, build))
        load_detector_state(model, state, own["checkpoint"])
        return cfg, model
    cfg = load_config(overrides)
    return cfg, build_module(cfg, num_classes or _dataset_classes(cfg)).model


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    try:
        own, overrides = split_options(argv, OPTIONS)
        opset = int(own["opset"])
        if own["verify"].lower() not in ("true", "false"):
            raise ConfigError(f"verify must be true or false, got {own['verify']!r}")
        cfg, model = _load(own, overrides)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        return user_error(e)
    import torch

    from yolozoo.onnx_export import export_onnx, onnx_parity

    size = cfg.data.img_size
    path = export_onnx(model, Path(own["out"]), size, opset=opset)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {opset}): images float32 [B, 3, {size}, {size}] "
          f"0..255 -> cls_logits [B, A, {model.num_classes}], boxes [B, A, 4] xyxy px")
    if own["verify"].lower() == "true":
        parity = onnx_parity(model, path, torch.rand(3, 3, size, size) * 255)
        print("onnxruntime vs eager, batch 3, max abs diff: " + "; ".join(map(str, parity)))
        if max(p.relative for p in parity) > TOLERANCE:
            print(f"error: onnxruntime differs from the eager model by more than {TOLERANCE} of the output scale",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
