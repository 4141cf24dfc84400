"""A sweep as data: ``sweeps/NAME.yaml`` = base overrides + axes (their product is the grid) + seeds.

Schema (every key but ``name`` and ``axes`` optional)::

    name: assigners            # must equal the file stem
    description: one line
    table: assigners           # report table: assigners | backbones | widths | pretrained
    base: {model.backbone: resnet18, data.img_size: 96}   # dotted overrides for every point
    axes:                      # product = grid; axis order = column order in tables
      model.width: [0.25, 0.5]                       # a dotted config key and its values, or
      assigner:                                      # label -> linked overrides
        tal: {assigner.name: tal}
        nearby_grid: {assigner.name: nearby_grid, model.head: anchor}
    seeds: [0, 1, 2]           # every grid point runs once per seed
    max_seeds: 5               # auto seeds: rows whose paired interval against the baseline
                               # still contains 0 get further seeds (3, 4), up to 5 in all
    baseline: {assigner: tal}  # axis -> value/label that deltas are computed against
    known: [nearby_grid > all_grid]  # directions a known study found, checked against the results

A point's overrides are layered by :func:`yolozoo.config.layered_overrides` (a ``preset=`` or
``config=FILE`` outranks ``base``). :func:`load_sweep` checks every point's config, so a typo fails
before any training, naming the file and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, flatten, format_overrides, layered_overrides, load_config
from ..record import METRICS
from ..sweep_files import find_file, is_path, list_names, where

TOP_KEYS = ("name", "description", "table", "base", "axes", "seeds", "max_seeds", "baseline", "known")
TABLES = ("assigners", "backbones", "widths", "pretrained")
RUNNER_KEYS = ("seed", "name")  # set per point by the runner
# The columns of a sweep's results frame (:func:`yolozoo.sweep.load_results`), around one column per axis.
HEAD_COLUMNS = ("sweep", "study", "trial", "status", "reason", "seed")
TAIL_COLUMNS = ("point", "overrides", "config", *METRICS, "pos_per_gt", "gt_without_pos", "pos_per_level", "history",
                "commit", "date", "device", "cpu", "isa", "preset", "dataset", "wandb_dir", "record", "run_dir",
                "checkpoint", "worker", "attempts", "duration_s", "reused_from")

Scalar = str | int | float | bool | None


class SweepError(ValueError):
    """A bad sweep or search file, name or option; the message names the file and key and what to fix."""


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


@dataclass
class SweepSpec:
    """A validated sweep file. ``axes`` maps axis -> label/value -> overrides, in file order."""

    name: str
    path: Path
    axes: dict[str, dict[Scalar, dict[str, Any]]]
    seeds: list[int]
    base: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    table: str | None = None
    baseline: dict[str, Scalar] = field(default_factory=dict)
    max_seeds: int | None = None  # auto seeds: the cap on seeds per row (None: exactly ``seeds``)
    known: list[tuple[str, str]] = field(default_factory=list)  # (row A, row B): a known study found A > B

    @property
    def all_seeds(self) -> list[int]:
        """``seeds``, then the next integers auto seeding may add, up to ``max_seeds``."""
        extra = max(self.seeds) + 1
        return [*self.seeds, *range(extra, extra + max((self.max_seeds or 0) - len(self.seeds), 0))]

    def point(self, labels: dict[str, Scalar], seed: int) -> Point:
        axis_overrides = {}
        for name, label in labels.items():
            axis_overrides.update(self.axes[name][label])
        return Point(dict(labels), seed, {**self.base, **axis_overrides}, axis_overrides)

    def points(self, seeds: list[int] | None = None) -> list[Point]:
        """Every (grid point, seed), seeds outermost: a whole first seed finishes before the second starts."""
        names = list(self.axes)
        return [self.point(dict(zip(names, combo)), seed) for seed in (self.seeds if seeds is None else seeds)
                for combo in itertools.product(*(list(self.axes[n]) for n in names))]

    def baseline_labels(self, labels: dict[str, Scalar]) -> dict[str, Scalar] | None:
        """The labels of the row ``labels`` is compared with, or None without a baseline."""
        return {**labels, **self.baseline} if self.baseline else None

    def resolve(self, axis_overrides: dict[str, Any], cli: dict[str, str]) -> dict[str, str]:
        """The ``key=value`` overrides for ``load_config``: base, then the axes, then the command line."""
        return layered_overrides(self.base, axis_overrides, cli)

    def search_space(self) -> dict[str, list[Scalar]]:
        """The grid as Optuna sees it: axis -> values/labels, and ``seed`` -> seeds."""
        return {**{n: list(values) for n, values in self.axes.items()}, "seed": self.all_seeds}

    def summary(self) -> dict:
        """JSON-able description stored with the study, so results load without the file."""
        return {"name": self.name, "description": self.description, "table": self.table, "base": self.base,
                "axes": {n: list(v) for n, v in self.axes.items()}, "seeds": self.seeds,
                "max_seeds": self.max_seeds, "baseline": self.baseline, "known": self.known, "path": str(self.path)}


# -- files shared by sweeps and searches ---------------------------------------------------------
def find_spec(name_or_path: str, sub: str = "", folder: Path | None = None, error: type = SweepError) -> Path:
    """``assigners`` -> ``assigners.yaml`` in ``folder`` or the sweep folders (``sub="search"``: search spaces;
    see :mod:`yolozoo.sweep_files`); a path to a ``.yaml`` file is used as is."""
    kind, label = ("search", "search space") if sub == "search" else ("sweep", "sweep")
    if is_path(name_or_path):
        if not Path(name_or_path).is_file():
            raise error(f"{kind} file {name_or_path} does not exist")
        return Path(name_or_path)
    path = find_file(name_or_path, sub, folder)
    if path is None:
        raise error(f"unknown {label} {name_or_path!r}; valid: {', '.join(list_names(sub, folder)) or '(none)'} "
                    f"(files in {where(sub, folder)}), or pass {kind}=path/to/file.yaml")
    return path


def read_spec(path: Path, top_keys: tuple[str, ...], error: type = SweepError) -> dict:
    """A sweep or search file's YAML, with its top-level keys and ``name`` checked."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None
    kind = "search" if error is not SweepError else "sweep"
    if not isinstance(data, dict):
        raise error(f"{path}: a {kind} file is a mapping with keys {', '.join(top_keys)}")
    unknown = [k for k in data if k not in top_keys]
    if unknown:
        raise error(f"{path}: unknown key {unknown[0]!r}; valid keys: {', '.join(top_keys)}")
    if data.get("name") != path.stem:
        raise error(f"{path}: name must equal the file stem {path.stem!r}, got {data.get('name')!r}")
    return data


def flatten_overrides(node: Any, where: str, error: type = SweepError) -> dict[str, Any]:
    """``{model: {width: 1}, data.img_size: 96}`` -> ``{"model.width": 1, "data.img_size": 96}``."""
    if not isinstance(node, dict):
        raise error(f"{where} must be a mapping of dotted config keys to values, got {node!r}")
    return flatten(node)


def checked_config(overrides: dict[str, str], where: str, error: type = SweepError):
    """``load_config(overrides)``, its error naming ``where`` (load_config calls every override "command line")."""
    try:
        return load_config(overrides)
    except ConfigError as e:
        raise error(f"{where}: {str(e).removeprefix('command line: ')}") from None


# -- sweep files ---------------------------------------------------------------------------------
def list_sweeps(sweeps_dir: Path | None = None) -> list[str]:
    return list_names(folder=sweeps_dir)


def find_sweep(name_or_path: str, sweeps_dir: Path | None = None) -> Path:
    return find_spec(name_or_path, folder=sweeps_dir)


def _parse_axis(name: Any, values: Any, where: str) -> dict[Scalar, dict[str, Any]]:
    if not isinstance(name, str) or not name:
        raise SweepError(f"{where}: axis names must be non-empty strings, got {name!r}")
    if name in HEAD_COLUMNS or name in TAIL_COLUMNS:  # an axis is a result column: it may not shadow another
        hint = " (use the top-level 'seeds: [...]' for repeats)" if name == "seed" else ""
        raise SweepError(f"{where}: axis {name!r} would shadow a result column; rename it{hint}")
    if isinstance(values, (list, dict)) and not values:
        raise SweepError(f"{where}: axis {name!r} has no {'values' if isinstance(values, list) else 'labels'}")
    if isinstance(values, list):  # a config key and its values
        bad = [v for v in values if v is not None and not isinstance(v, (str, int, float, bool))]
        if bad:
            raise SweepError(f"{where}: axis {name!r}: values must be numbers, strings, booleans or null, got "
                             f"{bad[0]!r}; for linked overrides write a mapping label -> {{key: value}}")
        if len(set(map(repr, values))) != len(values):
            raise SweepError(f"{where}: axis {name!r} repeats a value: {values}")
        return {v: {name: v} for v in values}
    if isinstance(values, dict):  # label -> linked overrides
        bad = [label for label in values if not isinstance(label, str)]
        if bad:
            raise SweepError(f"{where}: axis {name!r}: labels must be strings, got {bad[0]!r}")
        return {label: flatten_overrides(o or {}, f"{where}: axis {name!r} label {label!r}")
                for label, o in values.items()}
    raise SweepError(f"{where}: axis {name!r} must be a list of values or a mapping label -> overrides, got {values!r}")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_sweep(data: Any, path: Path) -> SweepSpec:
    """Check the structure of a loaded sweep file (not yet the config keys; see :func:`check_sweep`)."""
    where = str(path)
    if not isinstance(data, dict) or set(data) - set(TOP_KEYS) or data.get("name") != path.stem:
        raise SweepError(f"{where}: a sweep file is a mapping with keys {', '.join(TOP_KEYS)} and name {path.stem!r}")
    table = data.get("table")
    if table is not None and table not in TABLES:
        raise SweepError(f"{where}: table must be one of {', '.join(TABLES)}, got {table!r}")
    axes_in = data.get("axes")
    if not isinstance(axes_in, dict) or not axes_in:
        raise SweepError(f"{where}: 'axes' must be a non-empty mapping of axis name -> values or labels")
    axes = {name: _parse_axis(name, values, where) for name, values in axes_in.items()}
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(map(_int, seeds)) or len(set(seeds)) != len(seeds):
        raise SweepError(f"{where}: seeds must be a non-empty list of distinct integers, got {seeds!r}")
    max_seeds = data.get("max_seeds")
    if max_seeds is not None and (not _int(max_seeds) or max_seeds < len(seeds)):
        raise SweepError(f"{where}: max_seeds must be an integer >= the number of seeds ({len(seeds)}), "
                         f"got {max_seeds!r}")
    if max_seeds is not None and not data.get("baseline"):
        raise SweepError(f"{where}: max_seeds adds seeds to rows whose interval against the baseline is open; "
                         "set 'baseline' too")
    baseline = data.get("baseline") or {}
    if not isinstance(baseline, dict):
        raise SweepError(f"{where}: baseline must map an axis name to one of its values/labels, got {baseline!r}")
    for axis, value in baseline.items():
        if axis not in axes:
            raise SweepError(f"{where}: baseline names axis {axis!r}, which is not in axes ({', '.join(axes)})")
        if value not in axes[axis]:
            raise SweepError(f"{where}: baseline {axis}={value!r} is not one of {list(axes[axis])}")
    known = data.get("known") or []
    pairs = [re.fullmatch(r"\s*(\S+)\s*>\s*(\S+)\s*", k) if isinstance(k, str) else None
             for k in (known if isinstance(known, list) else [known])]
    if not isinstance(known, list) or not all(pairs):
        raise SweepError(f"{where}: known must be a list of 'ROW_A > ROW_B' (table row labels, e.g. "
                         f"'nearby_grid > all_grid' or 'mobilenetv2_100/imagenet > mobilenetv2_100/scratch'), "
                         f"got {known!r}")
    return SweepSpec(name=path.stem, path=path, axes=axes, seeds=seeds,
                     base=flatten_overrides(data.get("base") or {}, f"{where}: base"),
                     description=str(data.get("description") or ""), table=table, baseline=baseline,
                     max_seeds=max_seeds, known=[m.groups() for m in pairs])


def _check_runner_keys(overrides: dict, where: str) -> None:
    for key in RUNNER_KEYS:
        if key in overrides:
            what = "list it under 'seeds:'" if key == "seed" else "the runner names each point's run"
            raise SweepError(f"{where}: {key!r} is set per point by the sweep runner ({what}); remove it")


def check_sweep(spec: SweepSpec, cli: dict[str, str] | None = None) -> list:
    """Resolve every point's config (base + axes + command line), so bad keys or values fail now, naming the
    file and the part at fault: ``base``, an axis label, or the command line. Returns the configs of the first
    seed's points."""
    cli, where = dict(cli or {}), str(spec.path)
    _check_runner_keys(spec.base, f"{where}: base")
    _check_runner_keys(cli, "command line")
    checked_config(format_overrides(spec.base), f"{where}: base")
    for name, labels in spec.axes.items():
        for label, overrides in labels.items():
            _check_runner_keys(overrides, f"{where}: axis {name!r} label {label!r}")
            checked_config(spec.resolve(overrides, {}), f"{where}: axis {name!r} label {label!r}")
    if cli:
        checked_config(spec.resolve({}, cli), "command line")
    return [checked_config(spec.resolve(point.axis_overrides, cli), f"{where}: point {point.title}")
            for point in spec.points([spec.seeds[0]])]  # seeds change nothing that could fail here


def read_sweep(path: Path) -> SweepSpec:
    """Read and parse a sweep file's structure; its config keys are not checked (see :func:`check_sweep`)."""
    return parse_sweep(read_spec(path, TOP_KEYS), path)


def load_sweep(name_or_path: str, cli: dict[str, str] | None = None) -> SweepSpec:
    """Read, parse and check ``sweeps/NAME.yaml`` (or a path), with ``cli`` overrides on every point."""
    spec = read_sweep(find_sweep(name_or_path))
    check_sweep(spec, cli)
    return spec
