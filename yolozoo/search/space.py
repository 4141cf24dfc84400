"""A search space as data: ``sweeps/search/NAME.yaml`` = base overrides + searched parameters + how to search.

Schema (every key but ``name`` and ``params`` optional)::

    name: tal                          # must equal the file stem
    description: one line
    base: {assigner.name: tal}         # dotted overrides for every trial
    objective: {metric: mAP, direction: maximize}       # any recorded metric (see parse_objective)
    sampler: {name: tpe, seed: 0, n_startup_trials: 5}  # any Optuna sampler by name (see .samplers)
    pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}
    n_trials: 20                       # default budget (n_trials= on the command line wins)
    params:                            # see .params
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      assigner.topk: {type: int, low: 5, high: 15, when: {assigner.name: tal}}

A trial's overrides are layered as a sweep point's (a ``preset=`` or ``config=FILE`` outranks ``base``).
:func:`load_search` checks the config at each parameter's bounds and choices, so a typo fails before training.
The objective is one recorded metric; a pruner compares the per-epoch ``val/<metric>`` between trials.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..config import to_dict
from ..evaluation import SUMMARY_KEYS
from ..overrides import layered_overrides
from ..record import METRICS
from ..sweep.spec import checked_config, find_spec, flatten_overrides, read_spec
from ..sweep_files import list_names
from .params import Param, Scalar, SearchError, parse_param
from .samplers import make_pruner, make_sampler

TOP_KEYS = ("name", "description", "base", "objective", "sampler", "pruner", "n_trials", "params")
# Keys a search may not tune or set in base, and why.
FORBIDDEN = {"name": "the search names each trial's run", "config": "pass config=FILE on the command line",
             "seed": "the training seed is fixed for a study (seed= on the command line); tuning it fits noise",
             "preset": "pass preset= on the command line"}


# Logged as val/<metric> after every validation: these can feed a pruner.
PER_EPOCH = tuple(SUMMARY_KEYS)
# The better direction, where it is obvious; other metrics need an explicit direction.
DEFAULT_DIRECTION = {**{m: "maximize" for m in (*SUMMARY_KEYS, "best_mAP", "throughput", "train_img_per_s")},
                     **{m: "minimize" for m in ("params", "flops", "latency_ms", "train_time_s")}}
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Objective:
    """``metric``: a key of the run record's ``metrics``; ``direction``: maximize | minimize."""

    metric: str = "mAP"
    direction: str = "maximize"

    @property
    def per_epoch(self) -> bool:
        """Whether the metric is measured after every epoch (and so can be pruned on)."""
        return self.metric in PER_EPOCH

    @property
    def label(self) -> str:
        return f"val {self.metric}" if self.per_epoch else self.metric


def parse_objective(data: Any, where: str, metric: str | None = None, direction: str | None = None) -> Objective:
    """Check ``objective:`` of a search file; ``metric``/``direction`` (command line) override it."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise SearchError(f"{where}: objective must be a mapping {{metric: mAP, direction: maximize}}, got {data!r}")
    unknown = [k for k in data if k not in ("metric", "direction")]
    if unknown:
        raise SearchError(f"{where}: objective: unknown key {unknown[0]!r}; valid: metric, direction")
    metric = metric or data.get("metric", "mAP")
    if metric not in METRICS:
        raise SearchError(f"{where}: objective metric {metric!r} is not a recorded metric; valid: {', '.join(METRICS)}")
    file_direction = data.get("direction") if data.get("metric", "mAP") == metric else None
    direction = direction or file_direction or DEFAULT_DIRECTION.get(metric)
    if direction is None:
        raise SearchError(f"{where}: objective metric {metric!r} needs a direction (maximize or minimize)")
    if direction not in DIRECTIONS:
        raise SearchError(f"{where}: objective direction must be maximize or minimize, got {direction!r}")
    return Objective(metric, direction)


@dataclass
class SearchSpace:
    """A validated search file. ``sampler`` = ``{"name", "seed", "options"}``, ``pruner`` = ``{"name", "options"}``."""

    name: str
    path: Path
    params: dict[str, Param]
    base: dict[str, Any] = field(default_factory=dict)
    objective: Objective = field(default_factory=Objective)
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 0, "options": {}})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median", "options": {}})
    n_trials: int = 20
    description: str = ""

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
                "objective": {"metric": self.objective.metric, "direction": self.objective.direction},
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


def _named(data: Any, what: str, where: str, default: str) -> tuple[str, dict]:
    if data is None:
        return default, {}
    if not isinstance(data, dict):
        raise SearchError(f"{where}: {what} must be a mapping like {{name: {default}, ...}}, got {data!r}")
    options = {k: v for k, v in data.items() if k != "name"}
    return str(data.get("name", default)), options


def parse_search(data: Any, path: Path, options: Mapping[str, str] | None = None) -> SearchSpace:
    """Check the structure of a search file's data (top-level keys: see :func:`~yolozoo.sweep.spec.read_spec`);
    ``options`` (metric, direction, sampler, sampler_seed, pruner: the command line's) override the file."""
    where, options = str(path), dict(options or {})
    params_in = data.get("params")
    if not isinstance(params_in, dict) or not params_in:
        raise SearchError(f"{where}: 'params' must be a non-empty mapping of dotted config key -> distribution")
    params = {str(k): parse_param(k, v, where) for k, v in params_in.items()}
    base = flatten_overrides(data.get("base") or {}, f"{where}: base", error=SearchError)
    for key in [*base, *params]:
        if key in FORBIDDEN:
            raise SearchError(f"{where}: {key!r} cannot be set by a search file ({FORBIDDEN[key]})")
    objective = parse_objective(data.get("objective"), where, options.get("metric"), options.get("direction"))
    sampler_name, sampler_options = _named(data.get("sampler"), "sampler", where, "tpe")
    seed = sampler_options.pop("seed", 0)
    if options.get("sampler") and options["sampler"] != sampler_name:  # another sampler: the file's options are its
        sampler_name, sampler_options = options["sampler"], {}
    if options.get("sampler_seed") is not None:
        try:
            seed = int(options["sampler_seed"])
        except ValueError:
            raise SearchError(f"sampler_seed must be an integer, got {options['sampler_seed']!r}") from None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SearchError(f"{where}: sampler seed must be an integer (a search is replayable), got {seed!r}")
    make_sampler(sampler_name, seed, sampler_options, f"{where}: sampler")
    pruner_name, pruner_options = _named(data.get("pruner"), "pruner", where, "median")
    if options.get("pruner") and options["pruner"] != pruner_name:
        pruner_name, pruner_options = options["pruner"], {}
    make_pruner(pruner_name, pruner_options, f"{where}: pruner")
    if pruner_name != "none" and not objective.per_epoch:
        raise SearchError(f"{where}: pruner {pruner_name!r} needs a metric measured after every epoch "
                          f"({', '.join(PER_EPOCH)}); "
                          f"{objective.metric!r} is measured once after training: set pruner: {{name: none}}")
    n_trials = data.get("n_trials", 20)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise SearchError(f"{where}: n_trials must be a positive integer, got {n_trials!r}")
    return SearchSpace(name=path.stem, path=path, params=params, base=base, objective=objective,
                       sampler={"name": sampler_name, "seed": seed, "options": sampler_options},
                       pruner={"name": pruner_name, "options": pruner_options}, n_trials=n_trials,
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
    """Check base, command line and every parameter against the config; return the base config's values.
    Errors name the file and the part at fault (``base``, ``params.KEY``, the command line)."""
    cli, where = dict(cli or {}), str(space.path)
    for key in cli:
        if key == "name":
            raise SearchError("command line: 'name' is set per trial by the search; remove it")
        if key in space.params:
            raise SearchError(f"command line: {key!r} is a searched parameter in {where}; remove it from the "
                              "command line, or from the file's params")
    checked_config(space.resolve({}, {}), f"{where}: base", SearchError)
    values = config_values(checked_config(space.resolve({}, cli), "command line", SearchError))
    order = list(space.params)
    for index, param in enumerate(space.params.values()):
        at = f"{where}: params.{param.key}"
        for key, allowed in param.when.items():
            if key in space.params:
                if order.index(key) > index:
                    raise SearchError(f"{at}: when names {key!r}, a parameter listed after it; list {key!r} first")
                earlier = space.params[key]
                if earlier.type == "categorical" and not any(a in earlier.choices for a in allowed):
                    raise SearchError(f"{at}: when {key} in {list(allowed)}, but its choices are "
                                      f"{list(earlier.choices)}: never sampled")
            elif key not in values:
                raise SearchError(f"{at}: when names {key!r}, which is neither a config key nor an earlier parameter")
            elif not param.applies(values):
                raise SearchError(f"{at}: never sampled: when {key} in {list(allowed)}, but the config has "
                                  f"{key}={values[key]!r} and no parameter sets it")
        for context in _probe_contexts(space, param):
            for value in param.probe_values():
                checked_config(space.resolve({**context, param.key: value}, cli), f"{at}={value!r}", SearchError)
    return values


def load_search(name_or_path: str, cli: Mapping[str, str] | None = None, options: Mapping[str, str] | None = None
                ) -> tuple[SearchSpace, dict[str, Any]]:
    """Read, parse and check ``sweeps/search/NAME.yaml`` (or a path) with command-line ``cli`` overrides and
    search ``options``; return the space and the base config's values (the context of ``when``)."""
    path = find_spec(name_or_path, "search", error=SearchError)
    space = parse_search(read_spec(path, TOP_KEYS, SearchError), path, options)
    return space, check_search(space, cli)
