"""A search space as data: ``sweeps/search/NAME.yaml`` = base overrides + searched parameters + how to search.

Schema (every key but ``name`` and ``params`` optional)::

    name: tal                          # must equal the file stem
    description: one line
    base: {assigner.name: tal}         # dotted overrides for every trial
    objective: {metric: mAP, direction: maximize}       # any recorded metric
    sampler: {name: tpe, seed: 0, n_startup_trials: 5}  # an Optuna sampler (SAMPLERS) and its class's options
    pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}  # an Optuna pruner (PRUNERS), the same way
    n_trials: 20                       # default budget (n_trials= on the command line wins)
    params:                            # dotted config key -> {type: float|int|categorical, low, high, log, step}
      optim.name: {type: categorical, choices: [adamw, sgd]}
      assigner.topk: {type: int, low: 5, high: 15, when: {assigner.name: tal}}

``when`` maps a config key (or an earlier parameter) to a value or a list of values: the parameter is sampled only
in trials where every condition holds, and otherwise left at its config value. A trial's overrides are layered as a
sweep point's (a ``preset=`` or ``config=FILE`` outranks ``base``). :func:`load_search` checks the config at each
parameter's bounds and choices, so a typo fails before training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..config import layered_overrides, to_dict
from ..evaluation import SUMMARY_KEYS as PER_EPOCH  # logged as val/<metric> after every validation
from ..record import METRICS
from ..sweep.spec import Scalar, SweepError, checked_config, find_spec, flatten_overrides, read_spec
from ..sweep_files import list_names

TOP_KEYS = ("name", "description", "base", "objective", "sampler", "pruner", "n_trials", "params")
NUMBER = ("type", "low", "high", "log", "step", "when")
FIELDS = {"float": NUMBER, "int": NUMBER, "categorical": ("type", "choices", "when")}
# Keys a search may not tune or set in base, and why.
FORBIDDEN = {"name": "the search names each trial's run", "config": "pass config=FILE on the command line",
             "seed": "the training seed is fixed for a study (seed= on the command line); tuning it fits noise",
             "preset": "pass preset= on the command line"}
# The better direction, where it is obvious; other metrics need an explicit direction.
DEFAULT_DIRECTION = {**{m: "maximize" for m in (*PER_EPOCH, "best_mAP", "throughput", "train_img_per_s")},
                     **{m: "minimize" for m in ("params", "flops", "latency_ms", "train_time_s")}}
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
            "cmaes": optuna.samplers.CmaEsSampler, "gp": optuna.samplers.GPSampler,
            "qmc": optuna.samplers.QMCSampler, "nsgaii": optuna.samplers.NSGAIISampler}
NEEDS = {"cmaes": "cmaes", "gp": "scipy"}  # samplers that need a package beyond Optuna's own dependencies
PRUNERS = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
           "percentile": optuna.pruners.PercentilePruner, "hyperband": optuna.pruners.HyperbandPruner,
           "successive_halving": optuna.pruners.SuccessiveHalvingPruner, "threshold": optuna.pruners.ThresholdPruner}


class SearchError(SweepError):
    """A bad search space file, name or search option; the message names the file and key and what to fix."""


def _check(ok: Any, where: str, message: str) -> None:
    if not ok:
        raise SearchError(f"{where}: {message}")


def _number(value: Any, integer: bool = False) -> bool:
    return isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)


def build(kind: str, name: str, options: Mapping[str, Any], where: str | None = None, **fixed: Any) -> Any:
    """The Optuna ``kind`` ("sampler" or "pruner") ``name`` with ``fixed`` and the file's ``options``; an unknown
    name or option is a SearchError listing the valid ones (the class's signature)."""
    table, where = SAMPLERS if kind == "sampler" else PRUNERS, where or kind
    _check(name in table, where, f"unknown {kind} {name!r}; valid: {', '.join(table)}")
    valid = [p for p in inspect.signature(table[name]).parameters if p not in fixed]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise SearchError(f"{where}: {kind} {name!r} has no option {unknown[0]!r}; valid: {', '.join(valid)}")
    package = NEEDS.get(name)
    _check(not package or importlib.util.find_spec(package), where,
           f"sampler {name!r} needs the {package!r} package: pip install {package}")
    try:
        return table[name](**fixed, **options)
    except (TypeError, ValueError) as e:
        raise SearchError(f"{where}: {kind} {name!r}: {e}") from None


@dataclass(frozen=True)
class Param:
    """A searched config key: ``low``/``high``/``log``/``step`` for float and int, ``choices`` for categorical;
    sampled only where every ``when`` condition (key -> allowed values) holds."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Scalar, ...] = ()
    when: dict[str, tuple[Scalar, ...]] = field(default_factory=dict)

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether every condition holds for ``values``; a value matches by its text too (``0.5`` from YAML,
        ``"0.5"`` from a command line)."""
        return all(any(values.get(k) == v or str(values.get(k)) == str(v) for v in allowed)
                   for k, allowed in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Scalar:
        """Sample this parameter in ``trial`` (Optuna's parameter name is the dotted key)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def summary(self) -> dict:
        """JSON-able form, stored with the study (and part of its fingerprint)."""
        if self.type == "categorical":
            out = {"type": self.type, "choices": list(self.choices)}
        else:
            out = {"type": self.type, "low": self.low, "high": self.high, "log": self.log, "step": self.step}
        return {**out, "when": {k: list(v) for k, v in self.when.items()}} if self.when else out


def parse_param(key: Any, spec: Any, where: str) -> Param:
    """Check one ``params:`` entry of a search file; ``where`` names the file for errors."""
    _check(isinstance(key, str) and key, where, f"params: keys must be dotted config keys, got {key!r}")
    where = f"{where}: params.{key}"
    _check(isinstance(spec, dict), where,
           f"must be a mapping like {{type: float, low: 0.001, high: 0.1}}, got {spec!r}")
    kind = spec.get("type")
    _check(isinstance(kind, str) and kind in FIELDS, where, f"type must be one of {', '.join(FIELDS)}, got {kind!r}")
    unknown = [k for k in spec if k not in FIELDS[kind]]
    if unknown:
        raise SearchError(f"{where}: unknown field {unknown[0]!r} for type {kind}; valid: {', '.join(FIELDS[kind])}")
    when = _parse_when(spec.get("when"), key, where)
    if kind == "categorical":
        choices = spec.get("choices")
        _check(isinstance(choices, list) and choices, where, f"choices must be a non-empty list, got {choices!r}")
        bad = [c for c in choices if c is not None and not isinstance(c, (str, int, float, bool))]
        if bad:
            raise SearchError(f"{where}: choices must be numbers, strings, booleans or null, got {bad[0]!r}")
        _check(len(set(map(repr, choices))) == len(choices), where, f"choices repeat a value: {choices}")
        return Param(key, kind, choices=tuple(choices), when=when)
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    integer = kind == "int"
    _check(_number(low) and _number(high), where, f"low and high must be numbers, got low={low!r} high={high!r}")
    _check(not integer or _number(low, True) and _number(high, True), where,
           f"an int parameter needs integer low/high, got low={low!r} high={high!r}")
    _check(low < high, where, f"low must be below high, got low={low} high={high}")
    _check(isinstance(log, bool), where, f"log must be true or false, got {log!r}")
    _check(not log or low > 0, where, f"a log-scale parameter needs low > 0, got {low}")
    _check(step is None or _number(step, integer) and step > 0, where,
           f"step must be a positive {'integer' if integer else 'number'}, got {step!r}")
    _check(step is None or not log, where,
           "step and log cannot be combined (Optuna samples either on a grid or on a log scale); drop one")
    if not integer:
        low, high, step = float(low), float(high), None if step is None else float(step)
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def _parse_when(when: Any, key: str, where: str) -> dict[str, tuple[Scalar, ...]]:
    if when is None:
        return {}
    _check(isinstance(when, dict) and when, where, "when must map config keys to a value or a list of values, "
           f"e.g. {{assigner.name: tal}}; got {when!r}")
    out = {}
    for cond_key, allowed in when.items():
        _check(cond_key != key, where, "when cannot name the parameter itself")
        values = allowed if isinstance(allowed, list) else [allowed]
        _check(values and not any(isinstance(v, (dict, list)) for v in values), where,
               f"when.{cond_key} must be a value or a non-empty list of values, got {allowed!r}")
        out[str(cond_key)] = tuple(values)
    return out


def parse_objective(data: Any, where: str, metric: str | None, direction: str | None) -> tuple[str, str]:
    """``objective:`` of a search file as (metric, direction); ``metric``/``direction`` (command line) win."""
    data = {} if data is None else data
    _check(isinstance(data, dict), where,
           f"objective must be a mapping {{metric: mAP, direction: maximize}}, got {data!r}")
    unknown = [k for k in data if k not in ("metric", "direction")]
    if unknown:
        raise SearchError(f"{where}: objective: unknown key {unknown[0]!r}; valid: metric, direction")
    metric = metric or data.get("metric", "mAP")
    _check(metric in METRICS, where,
           f"objective metric {metric!r} is not a recorded metric; valid: {', '.join(METRICS)}")
    file_direction = data.get("direction") if data.get("metric", "mAP") == metric else None
    direction = direction or file_direction or DEFAULT_DIRECTION.get(metric)
    _check(direction, where, f"objective metric {metric!r} needs a direction (maximize or minimize)")
    _check(direction in ("maximize", "minimize"), where,
           f"objective direction must be maximize or minimize, got {direction!r}")
    return metric, direction


@dataclass
class SearchSpace:
    """A validated search file. ``sampler`` = ``{"name", "seed", "options"}``, ``pruner`` = ``{"name", "options"}``."""

    name: str
    path: Path
    params: dict[str, Param]
    base: dict[str, Any]
    metric: str  # the objective: a key of the run record's ``metrics``
    direction: str  # maximize | minimize
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    n_trials: int
    description: str

    @property
    def label(self) -> str:
        return f"val {self.metric}" if self.metric in PER_EPOCH else self.metric

    def resolve(self, sampled: Mapping[str, Any], cli: Mapping[str, str]) -> dict[str, str]:
        """``key=value`` overrides for ``load_config``: base (less what a preset or config=FILE sets), sampled, cli."""
        return layered_overrides(self.base, dict(sampled), dict(cli))

    def suggest(self, trial: optuna.Trial, context: Mapping[str, Any]) -> dict[str, Scalar]:
        """Sample the parameters whose ``when`` holds, in file order; ``context``: the base config's values."""
        sampled: dict[str, Scalar] = {}
        for param in self.params.values():
            if param.applies({**context, **sampled}):
                sampled[param.key] = param.suggest(trial)
        return sampled

    def summary(self) -> dict:
        """JSON-able description stored with the study."""
        return {"name": self.name, "description": self.description, "path": str(self.path), "base": self.base,
                "params": {k: p.summary() for k, p in self.params.items()},
                "objective": {"metric": self.metric, "direction": self.direction},
                "sampler": self.sampler, "pruner": self.pruner}

    @property
    def fingerprint(self) -> str:
        """Hash of what defines a study's trials (base, params, objective); not of sampler, pruner or budget."""
        s = self.summary()
        identity = {k: s[k] for k in ("base", "params", "objective")}
        return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def config_values(cfg: Any) -> dict[str, Any]:
    """A resolved config (DictConfig or dict) as ``{"dotted.key": value}`` (lists are values; ``assigner.*`` too)."""
    return flatten_overrides(cfg if isinstance(cfg, dict) else to_dict(cfg), "config")


def list_searches() -> list[str]:
    return list_names("search")


def _named(data: Any, kind: str, default: str, override: str | None, where: str) -> tuple[str, dict]:
    """A file's ``sampler:`` or ``pruner:`` as (name, options); the command line's ``override``, if another name,
    comes without the file's options (they are another class's)."""
    data = {} if data is None else data
    _check(isinstance(data, dict), where, f"{kind} must be a mapping like {{name: {default}, ...}}, got {data!r}")
    name = str(data.get("name", default))
    return (override, {}) if override and override != name else (name, {k: v for k, v in data.items() if k != "name"})


def parse_search(data: dict, path: Path, options: Mapping[str, str] | None = None) -> SearchSpace:
    """Check a search file's data (its top-level keys checked by :func:`~yolozoo.sweep.spec.read_spec`);
    ``options`` (metric, direction, sampler, sampler_seed, pruner: the command line's) override the file."""
    where, options = str(path), dict(options or {})
    entries = data.get("params")
    _check(isinstance(entries, dict) and entries, where,
           "'params' must be a non-empty mapping of dotted config key -> distribution")
    params = {str(k): parse_param(k, v, where) for k, v in entries.items()}
    base = flatten_overrides(data.get("base") or {}, f"{where}: base", error=SearchError)
    for key in [*base, *params]:
        _check(key not in FORBIDDEN, where, f"{key!r} cannot be set by a search file ({FORBIDDEN.get(key)})")
    metric, direction = parse_objective(data.get("objective"), where, options.get("metric"), options.get("direction"))
    sampler, sampler_options = _named(data.get("sampler"), "sampler", "tpe", options.get("sampler"), where)
    seed = (data.get("sampler") or {}).get("seed", 0)  # the file's, whichever sampler
    sampler_options.pop("seed", None)
    if options.get("sampler_seed") is not None:
        try:
            seed = int(options["sampler_seed"])
        except ValueError:
            raise SearchError(f"sampler_seed must be an integer, got {options['sampler_seed']!r}") from None
    _check(_number(seed, integer=True), where,
           f"sampler seed must be an integer (a search is replayable), got {seed!r}")
    build("sampler", sampler, sampler_options, f"{where}: sampler", seed=seed)
    pruner, pruner_options = _named(data.get("pruner"), "pruner", "median", options.get("pruner"), where)
    build("pruner", pruner, pruner_options, f"{where}: pruner")
    _check(pruner == "none" or metric in PER_EPOCH, where,
           f"pruner {pruner!r} needs a metric measured after every epoch ({', '.join(PER_EPOCH)}); "
           f"{metric!r} is measured once after training: set pruner: {{name: none}}")
    n_trials = data.get("n_trials", 20)
    _check(_number(n_trials, integer=True) and n_trials >= 1, where,
           f"n_trials must be a positive integer, got {n_trials!r}")
    return SearchSpace(name=path.stem, path=path, params=params, base=base, metric=metric, direction=direction,
                       sampler={"name": sampler, "seed": seed, "options": sampler_options},
                       pruner={"name": pruner, "options": pruner_options}, n_trials=n_trials,
                       description=str(data.get("description") or ""))


def _conditions(space: SearchSpace, param: Param) -> dict[str, Scalar]:
    """Values of earlier parameters that make ``param``'s ``when`` hold (the first allowed value of each)."""
    out: dict[str, Scalar] = {}
    for key, allowed in param.when.items():
        if key in space.params:
            out.update(_conditions(space, space.params[key]))
            out[key] = allowed[0]
    return out


def _probe_contexts(space: SearchSpace, param: Param) -> list[dict[str, Scalar]]:
    """Earlier parameter values to check ``param`` with: its conditions, with every earlier unconditional
    categorical parameter at its first choice, then at each other choice in turn (e.g. ``assigner.topk``
    under every ``assigner.name``)."""
    base = _conditions(space, param)
    earlier = [p for p in list(space.params.values())[:list(space.params).index(param.key)]
               if p.type == "categorical" and not p.when and p.key not in base]
    default = {**base, **{p.key: p.choices[0] for p in earlier}}
    return [default, *({**default, p.key: c} for p in earlier for c in p.choices[1:])]


def check_search(space: SearchSpace, cli: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check base, command line and every parameter (at its bounds or choices) against the config; return the
    base config's values. Errors name the file and the part at fault (``base``, ``params.KEY``, the command line)."""
    cli, where = dict(cli or {}), str(space.path)
    for key in cli:
        _check(key != "name", "command line", "'name' is set per trial by the search; remove it")
        _check(key not in space.params, "command line", f"{key!r} is a searched parameter in {where}; remove it "
               "from the command line, or from the file's params")
    checked_config(space.resolve({}, {}), f"{where}: base", SearchError)
    values = config_values(checked_config(space.resolve({}, cli), "command line", SearchError))
    order = list(space.params)
    for index, param in enumerate(space.params.values()):
        at = f"{where}: params.{param.key}"
        for key, allowed in param.when.items():
            if key in space.params:
                _check(order.index(key) < index, at,
                       f"when names {key!r}, a parameter listed after it; list {key!r} first")
                earlier = space.params[key]
                _check(earlier.type != "categorical" or any(a in earlier.choices for a in allowed), at,
                       f"when {key} in {list(allowed)}, but its choices are {list(earlier.choices)}: never sampled")
            elif key not in values:
                raise SearchError(f"{at}: when names {key!r}, which is neither a config key nor an earlier parameter")
            elif not param.applies(values):
                raise SearchError(f"{at}: never sampled: when {key} in {list(allowed)}, but the config has "
                                  f"{key}={values[key]!r} and no parameter sets it")
        for context in _probe_contexts(space, param):
            for value in param.choices or (param.low, param.high):
                checked_config(space.resolve({**context, param.key: value}, cli), f"{at}={value!r}", SearchError)
    return values


def load_search(name_or_path: str, cli: Mapping[str, str] | None = None, options: Mapping[str, str] | None = None
                ) -> tuple[SearchSpace, dict[str, Any]]:
    """Read, parse and check ``sweeps/search/NAME.yaml`` (or a path) with command-line ``cli`` overrides and
    search ``options``; return the space and the base config's values (the context of ``when``)."""
    path = find_spec(name_or_path, "search", error=SearchError)
    space = parse_search(read_spec(path, TOP_KEYS, SearchError), path, options)
    return space, check_search(space, cli)
