"""PAN-FPN neck (PANet, Liu et al. 2018): top-down then bottom-up fusion of three levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct, scaled_channels


class PANNeck(nn.Module):
    """Fuses three backbone maps (strides 8/16/32 by default) into ``out_channels`` maps at the same strides.

    Args:
        in_channels: backbone channels per level (from timm's ``feature_info``).
        width: channel multiplier (the known study's ``channel_sparsity``).
        base_channels: per-level channels at ``width=1``.
    """

    def __init__(self, in_channels: list[int], width: float = 1.0, base_channels=(128, 256, 512)):
        super().__init__()
        c3, c4, c5 = (scaled_channels(c, width) for c in base_channels)
        self.out_channels = [c3, c4, c5]
        self.lateral = nn.ModuleList(ConvBNAct(cin, c, 1) for cin, c in zip(in_channels, (c3, c4, c5)))
        self.td4 = ConvBNAct(c5 + c4, c4)
        self.td3 = ConvBNAct(c4 + c3, c3)
        self.down3 = ConvBNAct(c3, c3, 3, 2)
        self.bu4 = ConvBNAct(c3 + c4, c4)
        self.down4 = ConvBNAct(c4, c4, 3, 2)
        self.bu5 = ConvBNAct(c4 + c5, c5)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lateral, feats))
        # top-down
        t4 = self.td4(torch.cat([F.interpolate(p5, size=p4.shape[-2:], mode="nearest"), p4], 1))
        n3 = self.td3(torch.cat([F.interpolate(t4, size=p3.shape[-2:], mode="nearest"), p3], 1))
        # bottom-up
        n4 = self.bu4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bu5(torch.cat([self.down4(n4), p5], 1))
        return [n3, n4, n5]
