"""ONNX export of a detector, and the check that onnxruntime reproduces the eager model.

The exported graph is the detector's forward without post-processing:

    images      float32 [B, 3, H, W], RGB 0..255 (normalised inside, like the eager model)
    cls_logits  float32 [B, A, C]   class logits (sigmoid -> scores)
    boxes       float32 [B, A, 4]   xyxy, pixels of the input

``B`` is dynamic; ``H``/``W`` are fixed to the export size (the priors are baked in).
Score threshold + NMS (:func:`yolozoo.postprocess.postprocess`) run outside the graph.
"""

from __future__ import annotations

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


