"""The metric columns a report shows: results-frame key, header, display digits and scale, which way is better."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """A metric column: results-frame column, header, display scale and digits, which way is better."""

    key: str
    header: str
    digits: int
    scale: float = 1.0
    better: str = "max"  # max | min
    spread: bool = True  # show ± std (False for what does not vary with the seed: params, FLOPs)


MAP50 = Column("mAP50", "mAP@0.5", 3)
MAP = Column("mAP", "mAP@0.5:0.95", 3)

__all__ = ["MAP", "MAP50", "Column"]
