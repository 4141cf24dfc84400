"""PAN-FPN necks (PANet, Liu et al. 2018): top-down then bottom-up fusion of three levels, by name.

- ``pan``: each fusion concatenates the two maps, then a 3x3 conv (YOLOv4's to YOLOv8's PAN);
- ``pan_sum``: each fusion adds them, then a 3x3 conv (FPN's and PANet's own element-wise sums), a 1x1 conv
  matching the coarser map's channels first: about half the multiply-adds of ``pan`` at the same width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry
from .layers import ConvBNAct, scaled_channels

NECKS = Registry("neck")


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class _PAN(nn.Module):
    """Sizes the three levels' channels and their 1x1 laterals; subclasses fuse.

    Args:
        in_channels: backbone channels per level (from timm's ``feature_info``).
        width: channel multiplier (the known study's ``channel_sparsity``).
        base_channels: per-level channels at ``width=1``.

    ``forward(feats)``: three maps ``[B, in_channels[i], H_i, W_i]`` (strides 8/16/32 by default) -> three maps
    ``[B, out_channels[i], H_i, W_i]``.
    """

    def __init__(self, in_channels: list[int], width: float = 1.0, base_channels=(128, 256, 512)):
        super().__init__()
        self.out_channels = [scaled_channels(c, width) for c in base_channels]
        self.lateral = nn.ModuleList(ConvBNAct(cin, c, 1) for cin, c in zip(in_channels, self.out_channels))


@NECKS.register("pan")
class PANNeck(_PAN):
    """Concatenation, then a 3x3 conv, at each of the four fusions (see the module docstring)."""

    def __init__(self, in_channels: list[int], width: float = 1.0, base_channels=(128, 256, 512)):
        super().__init__(in_channels, width, base_channels)
        c3, c4, c5 = self.out_channels
        self.td4 = ConvBNAct(c5 + c4, c4)
        self.td3 = ConvBNAct(c4 + c3, c3)
        self.down3 = ConvBNAct(c3, c3, 3, 2)
        self.bu4 = ConvBNAct(c3 + c4, c4)
        self.down4 = ConvBNAct(c4, c4, 3, 2)
        self.bu5 = ConvBNAct(c4 + c5, c5)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lateral, feats))
        t4 = self.td4(torch.cat([_up(p5, p4), p4], 1))  # top-down
        n3 = self.td3(torch.cat([_up(t4, p3), p3], 1))
        n4 = self.bu4(torch.cat([self.down3(n3), t4], 1))  # bottom-up
        n5 = self.bu5(torch.cat([self.down4(n4), p5], 1))
        return [n3, n4, n5]


@NECKS.register("pan_sum")
class SumPANNeck(_PAN):
    """Element-wise sum, then a 3x3 conv, at each fusion; 1x1 convs (top-down) and the stride-2 3x3 convs
    (bottom-up) give the coarser map the finer one's channels, or the reverse (see the module docstring)."""

    def __init__(self, in_channels: list[int], width: float = 1.0, base_channels=(128, 256, 512)):
        super().__init__(in_channels, width, base_channels)
        c3, c4, c5 = self.out_channels
        self.reduce5, self.reduce4 = ConvBNAct(c5, c4, 1), ConvBNAct(c4, c3, 1)
        self.td4, self.td3 = ConvBNAct(c4, c4), ConvBNAct(c3, c3)
        self.down3, self.bu4 = ConvBNAct(c3, c4, 3, 2), ConvBNAct(c4, c4)
        self.down4, self.bu5 = ConvBNAct(c4, c5, 3, 2), ConvBNAct(c5, c5)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lateral, feats))
        t4 = self.td4(p4 + _up(self.reduce5(p5), p4))  # top-down
        n3 = self.td3(p3 + _up(self.reduce4(t4), p3))
        n4 = self.bu4(self.down3(n3) + t4)  # bottom-up
        n5 = self.bu5(self.down4(n4) + p5)
        return [n3, n4, n5]
