"""A sweep as a report reads it: the file parsed by :mod:`yolozoo.sweep.spec`, its axis values as table labels
(matched through :func:`same`, so ``1`` in a sweep file and ``1.0`` in a resolved config name the same point)."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

from ..cli_help import show as label
from ..sweep.spec import Scalar, SweepSpec, find_sweep, read_sweep


def same(a: Any, b: Any) -> bool:
    """Whether two axis values name the same point: numerically for numbers, else by their text."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        return float(a) == float(b)
    return label(a) == label(b)


def dotted_get(tree: dict | None, key: str) -> Any:
    """``tree["model"]["width"]`` for ``key="model.width"``; None where the path is absent."""
    return functools.reduce(lambda node, part: node.get(part) if isinstance(node, dict) else None, key.split("."), tree)


class Axis:
    """One sweep axis: label -> the overrides it sets, in file order. A value axis (``name: [values]``, each
    label setting only ``name`` itself) names a config's point by its value of ``name``."""

    def __init__(self, name: str, points: dict[Scalar, dict[str, Any]]):
        self.name = name
        self.overrides = {label(k): v for k, v in points.items()}
        self.by_value = all(overrides == {name: value} for value, overrides in points.items())

    def canonical(self, value: Any) -> str:
        """The label of this axis that ``value`` names (or ``label(value)`` for a value not in the sweep)."""
        for lab, overrides in self.overrides.items():
            if same(value, overrides[self.name] if self.by_value else lab):
                return lab
        return label(value)

    def from_config(self, config: dict) -> str | None:
        """The label of the point a resolved ``config`` ran, or None if it matches none."""
        if self.by_value:
            value = dotted_get(config, self.name)
            return None if value is None else self.canonical(value)
        matches = [(len(ov), lab) for lab, ov in self.overrides.items()
                   if all(same(dotted_get(config, k), v) for k, v in ov.items())]
        # the most specific match: {assigner.name: tal, assigner.topk: 13} beats {assigner.name: tal}
        return max(matches, key=lambda m: m[0])[1] if matches else None


class ReportSpec:
    """A parsed sweep with its axes (in column order) and baseline as table labels."""

    def __init__(self, sweep: SweepSpec):
        self.sweep = sweep
        self.name = sweep.name
        axes = {name: Axis(name, points) for name, points in sweep.axes.items()}
        self.axes = tuple(axes.values())
        self.axis_names = list(axes)
        self.baseline = {name: axes[name].canonical(v) for name, v in sweep.baseline.items()}  # axis -> its label

    def points(self) -> list[tuple[str, ...]]:
        """Every grid point as a tuple of labels, in grid order (axis order, then value order)."""
        return list(itertools.product(*(a.overrides for a in self.axes)))

    def baseline_of(self, point: tuple[str, ...]) -> tuple[str, ...] | None:
        """The baseline row ``point`` is compared with: ``point`` with the baseline's axis values."""
        return tuple(self.baseline.get(a.name, lab) for a, lab in zip(self.axes, point)) if self.baseline else None


def load_spec(name_or_path: str | Path, sweeps_dir: str | Path | None = None) -> ReportSpec:
    """``NAME.yaml`` from ``sweeps_dir`` or the sweep folders (or a path); raises ``SweepError``. Only the file's
    structure is checked, not its config keys: a report of past runs must not depend on the current config tree."""
    return ReportSpec(read_sweep(find_sweep(str(name_or_path), Path(sweeps_dir) if sweeps_dir else None)))
