"""A sweep file (``sweeps/NAME.yaml``, see the README's Sweeps section) as a validated model, and its grid of points;
:func:`load_sweep` checks every point's config, so a typo fails before any training, naming the file and the key."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from .. import sweep_files
from ..config import ConfigError, format_overrides, layered_overrides, load_config
from ..record import METRICS
from .schema import DISTINCT, Overrides, Scalar, SpecFile, SweepError, Value, Values, read_spec

TABLES = ("assigners", "backbones", "widths", "pretrained")
# The columns of a sweep's results frame (:func:`yolozoo.sweep.load_results`), around one column per axis.
HEAD_COLUMNS = ("sweep", "study", "trial", "status", "reason", "seed")
TAIL_COLUMNS = ("point", "overrides", "config", *METRICS, "pos_per_gt", "gt_without_pos", "pos_per_level", "history",
                "commit", "date", "device", "cpu", "isa", "preset", "dataset", "wandb_dir", "record", "run_dir",
                "checkpoint", "worker", "attempts", "duration_s", "reused_from")
# a config key's values, or label -> linked overrides
Axis = Annotated[Annotated[Values, Tag("values")] | Annotated[dict[str, Overrides], Field(min_length=1), Tag("labels")],
                 Discriminator(lambda v: {list: "values", dict: "labels"}.get(type(v)), custom_error_type="axis",
                               custom_error_message="must be a list of values or a mapping label -> {key: value}")]


@dataclass(frozen=True)
class Point:
    """One run of the grid: axis labels/values, a seed, ``overrides`` = base + the axes' overrides
    (not the command line, not the seed), ``axis_overrides`` = the axes' part alone."""

    labels: dict[str, Scalar]
    seed: int
    overrides: dict[str, Any]
    axis_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Scalar]:
        """The point as Optuna trial parameters: one per axis, plus ``seed``."""
        return {**self.labels, "seed": self.seed}

    @property
    def key(self) -> str:
        return point_key(self.params)

    @property
    def title(self) -> str:
        """``assigner=tal seed=0``."""
        return " ".join(f"{k}={v}" for k, v in self.params.items())

    @property
    def slug(self) -> str:
        """``tal-s0``: for run names and files."""
        parts = [str(v).replace("/", "_").replace(" ", "_") for v in self.labels.values()]
        return "-".join([*parts, f"s{self.seed}"])

    @property
    def fingerprint(self) -> str:
        """Hash of the overrides: a completed trial or record only counts for this point if they still match."""
        return hashlib.sha1(json.dumps(self.overrides, sort_keys=True, default=str).encode()).hexdigest()[:12]


def point_key(params: dict[str, Any]) -> str:
    """Canonical text of a point's parameters (axis values + seed), the identity of a grid point."""
    return json.dumps(params, sort_keys=True, default=str)


class SweepSpec(SpecFile):
    """A validated sweep file. ``axes`` maps axis -> label/value -> overrides, in file order."""

    table: Literal[TABLES] | None = None
    base: Overrides = {}
    axes: Annotated[dict[str, Axis], Field(min_length=1)]
    seeds: Annotated[list[int], Field(min_length=1), DISTINCT] = [0]
    max_seeds: int | None = None  # auto seeds: the cap on seeds per row (None: exactly ``seeds``)
    baseline: dict[str, Value] = {}
    known: list[str] = []  # "A > B": a known study found row A > row B; parsed to (A, B)

    @field_validator("axes")
    @classmethod
    def _grid(cls, axes: dict[str, Any]) -> dict[str, dict[Scalar, dict[str, Any]]]:
        """Each axis as label -> overrides (a value axis ``key: [values]``: value -> ``{key: value}``)."""
        for name in axes:  # an axis is a result column: it may not shadow another
            if name in HEAD_COLUMNS or name in TAIL_COLUMNS:
                hint = " (use the top-level 'seeds: [...]' for repeats)" if name == "seed" else ""
                raise ValueError(f"axis {name!r} would shadow a result column; rename it{hint}")
        return {name: {v: {name: v} for v in values} if isinstance(values, list) else values
                for name, values in axes.items()}

    @field_validator("known")
    @classmethod
    def _pairs(cls, known: list[str]) -> list[tuple[str, str]]:
        pairs = [re.fullmatch(r"\s*(\S+)\s*>\s*(\S+)\s*", k) for k in known]
        if not all(pairs):
            raise ValueError("must be a list of 'ROW_A > ROW_B' (table row labels, e.g. 'nearby_grid > all_grid' or "
                             f"'mobilenetv2_100/imagenet > mobilenetv2_100/scratch'), got {known!r}")
        return [m.groups() for m in pairs]

    @model_validator(mode="after")
    def _rules(self) -> SweepSpec:
        if self.max_seeds is not None and self.max_seeds < len(self.seeds):
            raise ValueError(f"max_seeds must be >= the number of seeds ({len(self.seeds)}), got {self.max_seeds}")
        if self.max_seeds is not None and not self.baseline:
            raise ValueError("max_seeds adds seeds to rows whose interval against the baseline is open; set "
                             "'baseline' too")
        for axis, value in self.baseline.items():
            if axis not in self.axes:
                raise ValueError(f"baseline names axis {axis!r}, which is not in axes ({', '.join(self.axes)})")
            if value not in self.axes[axis]:
                raise ValueError(f"baseline {axis}={value!r} is not one of {list(self.axes[axis])}")
        return self

    @property
    def all_seeds(self) -> list[int]:
        """``seeds``, then the next integers auto seeding may add, up to ``max_seeds``."""
        extra = max(self.seeds) + 1
        return [*self.seeds, *range(extra, extra + max((self.max_seeds or 0) - len(self.seeds), 0))]

    def point(self, labels: dict[str, Scalar], seed: int) -> Point:
        axis_overrides = {k: v for name, label in labels.items() for k, v in self.axes[name][label].items()}
        return Point(dict(labels), seed, {**self.base, **axis_overrides}, axis_overrides)

    def points(self, seeds: list[int] | None = None) -> list[Point]:
        """Every (grid point, seed), seeds outermost: a whole first seed finishes before the second starts."""
        names = list(self.axes)
        return [self.point(dict(zip(names, combo)), seed) for seed in (self.seeds if seeds is None else seeds)
                for combo in itertools.product(*(list(self.axes[n]) for n in names))]

    def resolve(self, axis_overrides: dict[str, Any], cli: dict[str, str]) -> dict[str, str]:
        """The ``key=value`` overrides for ``load_config``: base, then the axes, then the command line."""
        return layered_overrides(self.base, axis_overrides, cli)

    def search_space(self) -> dict[str, list[Scalar]]:
        """The grid as Optuna sees it: axis -> values/labels, and ``seed`` -> seeds."""
        return {**{n: list(values) for n, values in self.axes.items()}, "seed": self.all_seeds}

    def summary(self) -> dict:
        """JSON-able description stored with the study, so results load without the file."""
        # warnings=False: validators turned axes and known into their parsed forms, which the declared types are not
        return {**self.model_dump(warnings=False), "axes": {n: list(v) for n, v in self.axes.items()},
                "path": str(self.path)}


def checked_config(overrides: dict[str, str], where: str, error: type = SweepError):
    """``load_config(overrides)``, its error naming ``where`` (load_config calls every override "command line")."""
    try:
        return load_config(overrides)
    except ConfigError as e:
        raise error(f"{where}: {str(e).removeprefix('command line: ')}") from None


# -- sweep files ---------------------------------------------------------------------------------
find_spec = functools.partial(sweep_files.find_spec, error=SweepError)  # (name_or_path, sub="", folder=None)
list_sweeps = functools.partial(sweep_files.list_names, "")  # (sweeps_dir=None): the names in sweeps_dir or the folders
read_sweep = functools.partial(read_spec, model=SweepSpec)  # (path): the file's structure; see check_sweep for its keys


def find_sweep(name_or_path: str, sweeps_dir: Path | None = None) -> Path:
    return find_spec(name_or_path, folder=sweeps_dir)


def check_sweep(spec: SweepSpec, cli: dict[str, str] | None = None) -> list:
    """Resolve every point's config (base + axes + command line), so bad keys or values fail now, naming the
    file and the part at fault: ``base``, an axis label, or the command line. Returns the configs of the first
    seed's points."""
    cli, where = dict(cli or {}), str(spec.path)
    axes = {f"{where}: axis {name!r} label {label!r}": overrides for name, labels in spec.axes.items()
            for label, overrides in labels.items()}
    for at, overrides in {f"{where}: base": spec.base, **axes, "command line": cli}.items():
        for key, what in {"seed": "list it under 'seeds:'", "name": "the runner names each point's run"}.items():
            if key in overrides:  # set per point by the runner
                raise SweepError(f"{at}: {key!r} is set per point by the sweep runner ({what}); remove it")
    checked_config(format_overrides(spec.base), f"{where}: base")
    for at, overrides in axes.items():
        checked_config(spec.resolve(overrides, {}), at)
    if cli:
        checked_config(spec.resolve({}, cli), "command line")
    return [checked_config(spec.resolve(point.axis_overrides, cli), f"{where}: point {point.title}")
            for point in spec.points([spec.seeds[0]])]  # seeds change nothing that could fail here


def load_sweep(name_or_path: str, cli: dict[str, str] | None = None) -> SweepSpec:
    """Read, parse and check ``sweeps/NAME.yaml`` (or a path), with ``cli`` overrides on every point."""
    spec = read_sweep(find_sweep(name_or_path))
    check_sweep(spec, cli)
    return spec
