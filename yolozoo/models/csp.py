"""CSP blocks and the CSP-PAN neck of YOLOv5, YOLOX and YOLOv8, with width and depth multipliers.

Blocks (Cross Stage Partial, Wang et al. 2020): half of the channels go through a stack of
bottlenecks, the other half bypass it, and a 1x1 conv fuses both.

- :class:`C3` (YOLOv5, Jocher et al. 2020; YOLOX's ``CSPLayer``): two 1x1 convs split the input,
  ``n`` bottlenecks (1x1 then 3x3) on one half, a 1x1 conv on the concatenation.
- :class:`C2f` (YOLOv8, Jocher et al. 2023): one 1x1 conv, split in two; ``n`` bottlenecks
  (3x3 then 3x3) chained on the second half, *every* intermediate output concatenated, a 1x1
  conv on the ``(2 + n)`` parts.
- :class:`SPPF`: three chained 5x5 max-pools concatenated (the fast form of SPP, He et al. 2014).

Scaling as in those papers' model tables: ``width`` multiplies channels (rounded to a
multiple of 8), ``depth`` multiplies the number of bottlenecks per block (rounded, at least 1).
At ``width = depth = 1`` the neck has the "L" models' channels (256, 512, 1024) and 3
bottlenecks per block; YOLOv5-S / YOLOX-S / YOLOv8-S are ``width=0.5, depth=0.33``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct, scaled_channels

STYLES = ("v5", "v8")


def scaled_depth(n: int, depth: float) -> int:
    """Blocks of a stage: ``round(n * depth)``, at least 1."""
    return max(round(n * depth), 1)


class Bottleneck(nn.Module):
    """``x + conv_k2(conv_k1(x))`` (the sum only with ``shortcut``): ``[B, c, H, W] -> [B, c, H, W]``."""

    def __init__(self, c: int, kernels: tuple[int, int] = (1, 3), shortcut: bool = True):
        super().__init__()
        self.cv1, self.cv2 = ConvBNAct(c, c, kernels[0]), ConvBNAct(c, c, kernels[1])
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C3(nn.Module):
    """YOLOv5's CSP block: ``[B, cin, H, W] -> [B, cout, H, W]``, ``n`` (1x1, 3x3) bottlenecks on half the width."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = False):
        super().__init__()
        c = cout // 2
        self.cv1, self.cv2 = ConvBNAct(cin, c, 1), ConvBNAct(cin, c, 1)
        self.m = nn.Sequential(*(Bottleneck(c, (1, 3), shortcut) for _ in range(n)))
        self.cv3 = ConvBNAct(2 * c, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat([self.m(self.cv1(x)), self.cv2(x)], 1))


class C2f(nn.Module):
    """YOLOv8's CSP block: ``[B, cin, H, W] -> [B, cout, H, W]``, ``n`` (3x3, 3x3) bottlenecks, all outputs kept."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = False):
        super().__init__()
        self.c = cout // 2
        self.cv1 = ConvBNAct(cin, 2 * self.c, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, (3, 3), shortcut) for _ in range(n))
        self.cv2 = ConvBNAct((2 + n) * self.c, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, 1))  # 2 x [B, c, H, W]
        for m in self.m:
            parts.append(m(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SPPF(nn.Module):
    """1x1 conv to ``cin / 2``, three chained ``k x k`` max-pools, concat of the four, 1x1 conv to ``cout``.

    ``[B, cin, H, W] -> [B, cout, H, W]``.
    """

    def __init__(self, cin: int, cout: int, k: int = 5):
        super().__init__()
        c = cin // 2
        self.cv1, self.cv2 = ConvBNAct(cin, c, 1), ConvBNAct(4 * c, cout, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.cv1(x)]
        for _ in range(3):
            parts.append(self.pool(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class CSPPAN(nn.Module):
    """PAN neck (top-down then bottom-up) built from CSP blocks: maps at strides 8/16/32 -> ``out_channels``.

    Args:
        in_channels: backbone channels per level (timm ``feature_info``); a 1x1 conv (SPPF on
            the stride-32 map) adapts each to the neck's width, as the papers' own backbones
            already end at these widths.
        width, depth: channel and block-count multipliers (module docstring).
        style: ``v5`` (YOLOv5 / YOLOX PAFPN: C3 blocks, a 1x1 conv reduces each map before it
            is upsampled and is reused in the bottom-up path) or ``v8`` (C2f blocks, no
            reducing convs: the upsampled map is concatenated as is).
        base_channels, base_depth: channels per level and bottlenecks per block at 1.0.

    ``forward([p3, p4, p5]) -> [n3, n4, n5]`` with ``n_i [B, out_channels[i], H_i, W_i]``.
    """

    def __init__(self, in_channels: list[int], width: float = 1.0, depth: float = 1.0, style: str = "v5",
                 base_channels: tuple[int, int, int] = (256, 512, 1024), base_depth: int = 3):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"CSPPAN style must be one of {', '.join(STYLES)}, got {style!r}")
        c3, c4, c5 = (scaled_channels(c, width) for c in base_channels)
        n = scaled_depth(base_depth, depth)
        block = C3 if style == "v5" else C2f
        self.style, self.out_channels = style, [c3, c4, c5]
        self.lateral = nn.ModuleList([ConvBNAct(in_channels[0], c3, 1), ConvBNAct(in_channels[1], c4, 1),
                                      SPPF(in_channels[2], c5)])
        if style == "v5":
            self.reduce5, self.reduce4 = ConvBNAct(c5, c4, 1), ConvBNAct(c4, c3, 1)
            up5, up4 = c4, c3  # channels of the maps upsampled (and reused bottom-up)
        else:
            self.reduce5, self.reduce4 = nn.Identity(), nn.Identity()
            up5, up4 = c5, c4
        self.td4 = block(up5 + c4, c4, n)
        self.td3 = block(up4 + c3, c3, n)
        self.down3, self.down4 = ConvBNAct(c3, c3, 3, 2), ConvBNAct(c4, c4, 3, 2)
        self.bu4 = block(c3 + up4, c4, n)
        self.bu5 = block(c4 + up5, c5, n)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lateral, feats))
        h5 = self.reduce5(p5)
        t4 = self.td4(torch.cat([F.interpolate(h5, size=p4.shape[-2:], mode="nearest"), p4], 1))
        h4 = self.reduce4(t4)
        n3 = self.td3(torch.cat([F.interpolate(h4, size=p3.shape[-2:], mode="nearest"), p3], 1))
        n4 = self.bu4(torch.cat([self.down3(n3), h4], 1))
        n5 = self.bu5(torch.cat([self.down4(n4), h5], 1))
        return [n3, n4, n5]
