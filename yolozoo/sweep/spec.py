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

A point's config is defaults <- ``base`` <- preset <- ``config=FILE`` <- axes <- command line:
``base`` holds the sweep's defaults for the CPU / digits setting, so ``preset=voc`` (or a
``config=FILE`` such as a search's best trial) replaces those it sets (see :meth:`SweepSpec.resolve`).

:func:`load_sweep` checks all of it, including every point's config through
:func:`~yolozoo.config.load_config`, so a typo fails before any training, naming the file
and the key.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import PRESET_DIR, ConfigError, default_value, load_config, read_overrides_file
from ..sweep_files import find_file, is_path, list_names, where
from .columns import HEAD_COLUMNS, TAIL_COLUMNS

TOP_KEYS = ("name", "description", "table", "base", "axes", "seeds", "max_seeds", "baseline", "known")
TABLES = ("assigners", "backbones", "widths", "pretrained")
# Set per point by the runner, so a sweep file or the command line may not set them.
RUNNER_KEYS = ("seed", "name")
# A point (and a search trial) does the work its config names. The default run's own settings (the keys of
# yolozoo/presets/default.yaml: its time budget, which would fit each point's epochs to the machine, and its
# batch) are set back to the dataclass defaults, unless the sweep's base, an axis, the command line or its
# config=FILE sets them. Nor is the layout timed at start-up: the published records ran channels_last, and a
# layout chosen by timing could change a point's numbers in the last bits from one worker to the next.
FIXED_WORK = {"trainer.channels_last": True}

Scalar = str | int | float | bool | None


class SweepError(ValueError):
    """A bad sweep file, name or sweep option; the message names the file and key and what to fix."""


@dataclass(frozen=True)
class Point:
    """One run of the grid: the axis values/labels, a seed, and the overrides they imply.

    ``overrides`` = base + the axes' overrides (not the command line, not the seed);
    ``axis_overrides`` = the axes' part alone.
    """

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
        """``assigner=tal seed=0``: for progress lines and tables."""
        return " ".join(f"{k}={v}" for k, v in self.params.items())

    @property
    def slug(self) -> str:
        """``tal-s0``: for run names and folders."""
        parts = [str(v).replace("/", "_").replace(" ", "_") for v in self.labels.values()]
        return "-".join([*parts, f"s{self.seed}"])

    @property
    def fingerprint(self) -> str:
        """Hash of the overrides: a completed trial only counts for this point if they still match."""
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
        """``seeds``, then the further seeds auto-seeding may add (the next integers), up to ``max_seeds``."""
        extra, nxt = [], max(self.seeds) + 1
        while len(self.seeds) + len(extra) < (self.max_seeds or 0):
            extra.append(nxt)
            nxt += 1
        return [*self.seeds, *extra]

    def point(self, labels: dict[str, Scalar], seed: int) -> Point:
        """The grid point with these axis labels/values and ``seed``."""
        axis_overrides = {}
        for name, label in labels.items():
            axis_overrides.update(self.axes[name][label])
        return Point(dict(labels), seed, {**self.base, **axis_overrides}, axis_overrides)

    def points(self, seeds: list[int] | None = None) -> list[Point]:
        """Every (grid point, seed) for ``seeds`` (default: the file's ``seeds``), seeds outermost:
        a whole first seed finishes before the second starts."""
        names = list(self.axes)
        return [self.point(dict(zip(names, combo)), seed) for seed in (self.seeds if seeds is None else seeds)
                for combo in itertools.product(*(list(self.axes[n]) for n in names))]

    def baseline_labels(self, labels: dict[str, Scalar]) -> dict[str, Scalar] | None:
        """The labels of the row ``labels`` is compared with (its baseline axes set), or None without a baseline."""
        return {**labels, **self.baseline} if self.baseline else None

    def resolve(self, axis_overrides: dict[str, Any], cli: dict[str, str]) -> dict[str, str]:
        """The ``key=value`` overrides for ``load_config``: base, then the axes, then the command line.

        ``base`` holds the sweep's defaults for the CPU / digits setting, so a preset outranks
        it: a base key that the chosen preset (``preset=voc``) also sets is left out, and the
        preset's value holds. A ``config=FILE`` on the command line outranks it the same way (its
        keys, and its preset's). Axes and the command line outrank the preset and the file.
        """
        return layered_overrides(self.base, axis_overrides, cli)

    def search_space(self) -> dict[str, list[Scalar]]:
        """The grid as Optuna sees it: axis -> values/labels, and ``seed`` -> seeds."""
        return {**{n: list(values) for n, values in self.axes.items()}, "seed": self.all_seeds}

    def summary(self) -> dict:
        """JSON-able description stored with the study, so results load without the file."""
        return {"name": self.name, "description": self.description, "table": self.table, "base": self.base,
                "axes": {n: list(v) for n, v in self.axes.items()}, "seeds": self.seeds,
                "max_seeds": self.max_seeds, "baseline": self.baseline, "known": self.known, "path": str(self.path)}


@functools.cache
def default_run_reset() -> dict[str, Any]:
    """The default preset's keys at their dataclass defaults (read once: every point and trial resolves them)."""
    return {k: default_value(k) for k in preset_keys("default")}


def layered_overrides(base: dict[str, Any], varied: dict[str, Any], cli: dict[str, str]) -> dict[str, str]:
    """The ``key=value`` overrides of one sweep point or search trial for ``load_config``, whose own layers are
    dataclass defaults < preset < these overrides. In rising order:

    the fixed work (:data:`FIXED_WORK`, and the default preset's keys at their dataclass defaults) < the study's
    ``base`` < ``varied`` (a point's axes, a trial's sampled values) < the command line. ``base`` holds the
    study's defaults for the CPU / digits setting, so a chosen preset (``preset=voc``; from the command line, its
    ``config=FILE``, else ``base`` or the axes) and a ``config=FILE`` outrank it and the fixed work: a key either
    sets is left out of both. The one place this order lives, for sweeps and searches alike.
    """
    from_file = config_file_overrides(dict(cli))
    merged = {**base, **varied}
    preset = str(cli.get("preset") or from_file.get("preset") or merged.get("preset", "default"))
    covered = (set() if preset == "default" else preset_keys(preset)) | set(from_file)
    fixed = {**default_run_reset(), **FIXED_WORK}
    fixed = {k: v for k, v in fixed.items() if k not in covered}
    kept = {k: v for k, v in base.items() if k not in covered}
    return {**format_overrides(fixed), **format_overrides(kept), **format_overrides(dict(varied)), **dict(cli)}


def config_file_overrides(cli: dict[str, str]) -> dict[str, Any]:
    """The overrides in the command line's ``config=FILE``, if any (a bad file is reported by load_config)."""
    if not cli.get("config"):
        return {}
    try:
        return read_overrides_file(cli["config"])
    except ConfigError:
        return {}


def preset_keys(preset: str) -> set[str]:
    """Dotted keys the preset file sets (none for an unknown preset: load_config reports that)."""
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        return set()
    return set(flatten_overrides(yaml.safe_load(path.read_text()) or {}, str(path)))


def list_sweeps(sweeps_dir: Path | None = None) -> list[str]:
    """The sweep names in ``sweeps_dir``, or in the folders of :func:`yolozoo.sweep_files.sweep_dirs`."""
    return list_names(folder=sweeps_dir)


def find_sweep(name_or_path: str, sweeps_dir: Path | None = None) -> Path:
    """``assigners`` -> ``assigners.yaml`` in ``sweeps_dir`` or the sweep folders (see :mod:`yolozoo.sweep_files`);
    a path to a ``.yaml`` file is used as is."""
    if is_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise SweepError(f"sweep file {path} does not exist")
        return path
    path = find_file(name_or_path, folder=sweeps_dir)
    if path is None:
        raise SweepError(f"unknown sweep {name_or_path!r}; valid: {', '.join(list_sweeps(sweeps_dir)) or '(none)'} "
                         f"(files in {where(folder=sweeps_dir)}), or pass sweep=path/to/file.yaml")
    return path


def flatten_overrides(node: Any, where: str, prefix: str = "") -> dict[str, Any]:
    """``{model: {width: 1}, data.img_size: 96}`` -> ``{"model.width": 1, "data.img_size": 96}``."""
    if not isinstance(node, dict):
        raise SweepError(f"{where} must be a mapping of dotted config keys to values, got {node!r}")
    out = {}
    for key, value in node.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_overrides(value, where, f"{full}."))
        else:
            out[full] = value
    return out


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _parse_axis(name: Any, values: Any, where: str) -> dict[Scalar, dict[str, Any]]:
    if not isinstance(name, str) or not name:
        raise SweepError(f"{where}: axis names must be non-empty strings, got {name!r}")

    if name in HEAD_COLUMNS or name in TAIL_COLUMNS:  # an axis is a result column: it may not shadow another
        hint = " (use the top-level 'seeds: [...]' for repeats)" if name == "seed" else ""
        raise SweepError(f"{where}: axis {name!r} would shadow a result column; rename it{hint}")
    if isinstance(values, list):  # a config key and its values
        if not values:
            raise SweepError(f"{where}: axis {name!r} has no values")
        bad = [v for v in values if not _is_scalar(v)]
        if bad:
            raise SweepError(f"{where}: axis {name!r}: values must be numbers, strings, booleans or null, got "
                             f"{bad[0]!r}; for linked overrides write a mapping label -> {{key: value}}")
        if len(set(map(repr, values))) != len(values):
            raise SweepError(f"{where}: axis {name!r} repeats a value: {values}")
        return {v: {name: v} for v in values}
    if isinstance(values, dict):  # label -> linked overrides
        if not values:
            raise SweepError(f"{where}: axis {name!r} has no labels")
        out = {}
        for label, overrides in values.items():
            if not isinstance(label, str):
                raise SweepError(f"{where}: axis {name!r}: labels must be strings, got {label!r}")
            out[label] = flatten_overrides(overrides or {}, f"{where}: axis {name!r} label {label!r}")
        return out
    raise SweepError(f"{where}: axis {name!r} must be a list of values or a mapping label -> overrides, got {values!r}")


def parse_sweep(data: Any, path: Path) -> SweepSpec:
    """Check the structure of a loaded sweep file (not yet the config keys; see :func:`check_sweep`)."""
    where = str(path)
    if not isinstance(data, dict):
        raise SweepError(f"{where}: a sweep file is a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(TOP_KEYS)}")
    if data.get("name") != path.stem:
        raise SweepError(f"{where}: name must equal the file stem {path.stem!r}, got {data.get('name')!r}")
    table = data.get("table")
    if table is not None and table not in TABLES:
        raise SweepError(f"{where}: table must be one of {', '.join(TABLES)}, got {table!r}")
    axes_in = data.get("axes")
    if not isinstance(axes_in, dict) or not axes_in:
        raise SweepError(f"{where}: 'axes' must be a non-empty mapping of axis name -> values or labels")
    axes = {name: _parse_axis(name, values, where) for name, values in axes_in.items()}
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds) or len(set(seeds)) != len(seeds)):
        raise SweepError(f"{where}: seeds must be a non-empty list of distinct integers, got {seeds!r}")
    max_seeds = data.get("max_seeds")
    if max_seeds is not None and (not isinstance(max_seeds, int) or isinstance(max_seeds, bool)
                                  or max_seeds < len(seeds)):
        raise SweepError(f"{where}: max_seeds must be an integer >= the number of seeds ({len(seeds)}), "
                         f"got {max_seeds!r}")
    if max_seeds is not None and not data.get("baseline"):
        raise SweepError(f"{where}: max_seeds adds seeds to rows whose interval against the baseline is open; "
                         "set 'baseline' too")
    base = flatten_overrides(data.get("base") or {}, f"{where}: base")
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
    description = data.get("description") or ""
    return SweepSpec(name=path.stem, path=path, axes=axes, seeds=seeds, base=base, description=str(description),
                     table=table, baseline=baseline, max_seeds=max_seeds,
                     known=[m.groups() for m in pairs])


def _check_runner_keys(overrides: dict, where: str) -> None:
    for key in RUNNER_KEYS:
        if key in overrides:
            what = "list it under 'seeds:'" if key == "seed" else "the runner names each point's run"
            raise SweepError(f"{where}: {key!r} is set per point by the sweep runner ({what}); remove it")


def override_text(value: Any) -> str:
    """A sweep file's YAML value as ``key=value`` text that parses back to the same value."""
    if isinstance(value, str):
        # quote strings YAML would read as something else ("false", "1e3"), so they stay strings
        return value if isinstance(yaml.safe_load(value or "''"), str) else json.dumps(value)
    return json.dumps(value)  # null, true/false, numbers, [lists] are all valid YAML


def format_overrides(overrides: dict[str, Any]) -> dict[str, str]:
    """Overrides as ``load_config`` takes them (text, like the command line)."""
    return {k: override_text(v) for k, v in overrides.items()}


def _check(overrides: dict[str, str], where: str) -> None:
    try:
        load_config(overrides)
    except ConfigError as e:  # load_config calls every override "command line"; say where it came from
        raise SweepError(f"{where}: {str(e).removeprefix('command line: ')}") from None


def check_sweep(spec: SweepSpec, cli: dict[str, str] | None = None) -> None:
    """Resolve every point's config (base + axes + command line) so bad keys or values fail now.

    Errors name the file and the part at fault: ``base``, an axis label, or the command line.
    """
    cli = dict(cli or {})
    where = str(spec.path)
    _check_runner_keys(spec.base, f"{where}: base")
    _check_runner_keys(cli, "command line")
    _check(format_overrides(spec.base), f"{where}: base")
    for name, labels in spec.axes.items():
        for label, overrides in labels.items():
            _check_runner_keys(overrides, f"{where}: axis {name!r} label {label!r}")
            _check(spec.resolve(overrides, {}), f"{where}: axis {name!r} label {label!r}")
    if cli:
        _check(spec.resolve({}, cli), "command line")
    for point in spec.points():
        if point.seed == spec.seeds[0]:  # seeds change nothing that could fail here
            _check(spec.resolve(point.axis_overrides, cli), f"{where}: point {point.title}")


def read_sweep(path: Path) -> SweepSpec:
    """Read and parse a sweep file's structure; its config keys are not checked (see :func:`check_sweep`)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SweepError(f"{path}: not valid YAML: {e}") from None
    return parse_sweep(data, path)


def load_sweep(name_or_path: str, cli: dict[str, str] | None = None) -> SweepSpec:
    """Read, parse and check ``sweeps/NAME.yaml`` (or a path), with ``cli`` overrides on every point."""
    spec = read_sweep(find_sweep(name_or_path))
    check_sweep(spec, cli)
    return spec
