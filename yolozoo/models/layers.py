"""Small building blocks shared by necks and heads."""

from __future__ import annotations

from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm -> SiLU, 'same' padding."""

    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, k, s, k // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(inplace=True),
        )


def scaled_channels(base: int, width: float, divisor: int = 8) -> int:
    """``base * width`` rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(base * width + divisor / 2) // divisor * divisor)
