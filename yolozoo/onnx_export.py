"""ONNX export of a detector, and the check that onnxruntime reproduces the eager model.

The exported graph is the detector's forward without post-processing:

    images      float32 [B, 3, H, W], RGB 0..255 (normalised inside, like the eager model)
    cls_logits  float32 [B, A, C]   class logits (sigmoid -> scores)
    boxes       float32 [B, A, 4]   xyxy, pixels of the input

``B`` is dynamic; ``H``/``W`` are fixed to the export size (the priors are baked in).
Score threshold + NMS (:func:`yolozoo.postprocess.postprocess`) run outside the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_NAMES = ["images"]
OUTPUT_NAMES = ["cls_logits", "boxes"]


class ExportWrapper(nn.Module):
    """Detector -> plain tensors: images [B, 3, H, W] -> (cls_logits [B, A, C], boxes [B, A, 4])."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.detector(images)
        return out.cls_logits, out.boxes


def export_onnx(detector: nn.Module, path: Path, img_size: int, opset: int = 18) -> Path:
    """Write ``detector`` (on the CPU, eval mode) as ONNX with a dynamic batch axis; return ``path``.

    Uses torch's ``torch.export``-based exporter (needs ``onnxscript``); weights are stored
    inside the one file.
    """
    wrapper = ExportWrapper(detector).cpu().eval()
    example = torch.rand(2, 3, img_size, img_size) * 255  # batch 2: 1 would be specialised as a constant
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(wrapper, (example,), str(path), dynamo=True, input_names=INPUT_NAMES,
                      output_names=OUTPUT_NAMES, dynamic_shapes={"images": {0: batch}}, opset_version=opset,
                      external_data=False, verbose=False)
    return path


@dataclass
class Parity:
    """One output's agreement: ``max_abs_diff`` between the two, ``max_abs`` of the eager output."""

    name: str
    max_abs_diff: float
    max_abs: float

    @property
    def relative(self) -> float:
        """``max_abs_diff`` over the output's scale (at least 1): float32 noise is ~1e-6 of it."""
        return self.max_abs_diff / max(self.max_abs, 1.0)

    def __str__(self) -> str:
        return f"{self.name} {self.max_abs_diff:.2e} (|out| <= {self.max_abs:.3g}, relative {self.relative:.1e})"


def onnx_parity(detector: nn.Module, path: Path, images: torch.Tensor) -> list[Parity]:
    """Compare onnxruntime (CPU) on ``path`` with the eager ``detector``, per output.

    images float [B, 3, H, W] in 0..255 at the export size. The eager float32 model itself
    differs from a float64 one by ~1e-5 of the output scale, so compare ``Parity.relative``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(OUTPUT_NAMES, {INPUT_NAMES[0]: images.float().numpy()})
    with torch.no_grad():
        want = [w.numpy() for w in ExportWrapper(detector).cpu().eval()(images.float())]
    return [Parity(name, float(np.abs(g - w).max()), float(np.abs(w).max()))
            for name, g, w in zip(OUTPUT_NAMES, got, want)]


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A detector state dict from a Lightning checkpoint (``state_dict`` with ``model.`` keys) or a plain one.

    Read with ``weights_only=True`` (see :func:`yolozoo.checkpoint.load_checkpoint`): nothing in the file runs.
    """
    from .checkpoint import detector_state, load_checkpoint

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
