"""Export a detector to ONNX and check onnxruntime against the eager model.

    python bench/export.py [key=value config overrides] [checkpoint=PATH] [out=model.onnx]
                           [num_classes=N] [opset=18] [verify=true]

The detector is built from the config exactly as ``bench/run.py`` builds it (pass the same
``model.*`` and ``data.img_size`` overrides as the run). With ``checkpoint`` (a Lightning
``.ckpt`` from ``runs/*/checkpoints/`` or a detector state dict) its weights are loaded
strictly and the class count is read from it; without, the model is freshly initialised
with ``num_classes`` (default: the dataset's). Graph: ``images`` float32 [B, 3, H, W] 0..255
-> ``cls_logits`` [B, A, C], ``boxes`` [B, A, 4] xyxy px; ``B`` is dynamic.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from yolozoo.config import ConfigError, load_config, parse_overrides  # noqa: E402

TOLERANCE = 1e-4  # max abs difference onnxruntime vs eager, over the output's scale (float32 noise: ~1e-5)
_OWN_KEYS = {"checkpoint": None, "out": "model.onnx", "num_classes": None, "opset": "18", "verify": "true"}


def _dataset_classes(cfg) -> int:
    if cfg.data.name == "digits":
        from yolozoo.data.digits import DIGITS_CLASSES

        return len(DIGITS_CLASSES)
    from yolozoo.data.registry import create_dataset
    from yolozoo.train import dataset_options

    return len(create_dataset(cfg.data.name, "val", cfg.data.root, **dataset_options(cfg.data)).classes)


def main(argv: list[str]) -> int:
    try:
        overrides = parse_overrides(argv)
        own = {k: overrides.pop(k, default) for k, default in _OWN_KEYS.items()}
        cfg = load_config(overrides)
        opset, num_classes = int(own["opset"]), int(own["num_classes"]) if own["num_classes"] else None
        if own["verify"].lower() not in ("true", "false"):
            raise ConfigError(f"verify must be true or false, got {own['verify']!r}")
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import torch

    from yolozoo.onnx_export import export_onnx, infer_num_classes, load_detector_state, onnx_parity, read_checkpoint
    from yolozoo.train import build_module

    def build(n: int) -> torch.nn.Module:
        return build_module(cfg, n).model

    try:
        if own["checkpoint"]:
            state = read_checkpoint(Path(own["checkpoint"]))
            model = build(num_classes or infer_num_classes(state, build))
            load_detector_state(model, state, own["checkpoint"])
        else:
            model = build(num_classes or _dataset_classes(cfg))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
