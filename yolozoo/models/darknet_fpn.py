"""YOLOv3's neck: a top-down FPN of Darknet conv sets, over the last 1, 2 or 3 pyramid levels.

YOLOv3 (Redmon & Farhadi 2018) detects at three scales. On the coarsest map a "conv set"
(1x1 to ``c``, then pairs of 3x3 to ``2c`` and 1x1 back to ``c``; two pairs in YOLOv3) is
followed by a 3x3 conv to ``2c`` that feeds the detection layer. The conv set's output is
also reduced by a 1x1 conv to ``c / 2``, upsampled x2 and concatenated with the backbone map
of the next finer level, which gets its own conv set, and so on. There is no bottom-up path.
All convs are Conv-BN-LeakyReLU(0.1) as in Darknet.

``c`` is 512 / 256 / 128 at strides 32 / 16 / 8, times ``width``; ``depth`` scales the
number of (3x3, 1x1) pairs per conv set (2 at 1.0). With ``num_levels=2`` (strides 16 and
32, like YOLOv3-tiny and the small "smol" variant) the stride-8 map is not used.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import TimmBackbone
from .csp import scaled_depth
from .darknet import ConvBnAct
from .layers import scaled_channels

BASE_CHANNELS = (128, 256, 512)  # conv-set width c per level, strides 8 / 16 / 32, at width 1.0


class LevelsBackbone(TimmBackbone):
    """:class:`TimmBackbone` returning only its last ``num_levels`` maps (of strides 8/16/32).

    ``strides`` and ``channels`` list those levels, so the detector builds priors for them only.
    The timm body and its state-dict keys are those of :class:`TimmBackbone`.
    """

    def __init__(self, name: str, pretrained: str | bool | Path = False, num_levels: int = 3, freeze: int = 0):
        super().__init__(name, pretrained, freeze=freeze)
        if not 1 <= num_levels <= len(self.indices):
            raise ValueError(f"num_levels must be in 1..{len(self.indices)}, got {num_levels}")
        self.indices = self.indices[-num_levels:]
        self.channels = self.channels[-num_levels:]
        self.strides = self.strides[-num_levels:]


def conv_set(cin: int, c: int, pairs: int) -> nn.Sequential:
    """1x1 to ``c``, then ``pairs`` x (3x3 to ``2c``, 1x1 to ``c``): ``[B, cin, H, W] -> [B, c, H, W]``."""
    layers = [ConvBnAct(cin, c, 1)]
    for _ in range(pairs):
        layers += [ConvBnAct(c, 2 * c, 3), ConvBnAct(2 * c, c, 1)]
    return nn.Sequential(*layers)


class DarknetFPN(nn.Module):
    """Top-down FPN of YOLOv3 over ``len(in_channels)`` levels, finest first.

    Args:
        in_channels: backbone channels per level, finest (smallest stride) first; 1 to 3 levels,
            the coarsest being stride 32.
        width, depth: channel multiplier, and multiplier of the 2 (3x3, 1x1) pairs per conv set.

    ``forward(feats) -> outs`` with ``outs[i] [B, out_channels[i], H_i, W_i]``, ``out_channels[i] = 2 c_i``.
    """

    def __init__(self, in_channels: list[int], width: float = 1.0, depth: float = 1.0):
        super().__init__()
        L = len(in_channels)
        if not 1 <= L <= len(BASE_CHANNELS):
            raise ValueError(f"DarknetFPN takes 1 to {len(BASE_CHANNELS)} levels, got {L}")
        c = [scaled_channels(b, width) for b in BASE_CHANNELS[-L:]]  # finest first
        pairs = scaled_depth(2, depth)
        self.out_channels = [2 * ci for ci in c]
        self.sets, self.outs, self.reduce = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(L)):  # coarsest first: each level takes the upsampled coarser one
            cin = in_channels[i] + (c[i + 1] // 2 if i + 1 < L else 0)
            self.sets.append(conv_set(cin, c[i], pairs))
            self.outs.append(ConvBnAct(c[i], 2 * c[i], 3))
            if i > 0:
                self.reduce.append(ConvBnAct(c[i], c[i] // 2, 1))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        outs, x = [], None
        for j, f in enumerate(reversed(feats)):  # j = 0: the coarsest level
            if x is not None:
                f = torch.cat([F.interpolate(self.reduce[j - 1](x), size=f.shape[-2:], mode="nearest"), f], 1)
            x = self.sets[j](f)
            outs.append(self.outs[j](x))
        return outs[::-1]
