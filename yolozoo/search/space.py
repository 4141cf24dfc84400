"""A search space as data: ``sweeps/search/NAME.yaml`` = base overrides + searched parameters + how to search
(the README's "Search" section and the models below)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import optuna
from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, ValidationInfo, model_validator

from ..config import flatten, layered_overrides, to_dict
from ..evaluation import SUMMARY_KEYS as PER_EPOCH  # logged as val/<metric> after every validation
from ..record import METRICS
from ..sweep.schema import NONE_IS_EMPTY, FileModel, Overrides, Scalar, SpecFile, SweepError, Values, read_spec
from ..sweep.spec import checked_config, find_spec
from ..sweep_files import list_names

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
list_searches = functools.partial(list_names, "search")  # (folder=None): the search names in folder or sweep_dirs


class SearchError(SweepError):
    """A bad search space file, name or search option; the message names the file and key and what to fix."""


def _check(ok: Any, where: str, message: str) -> None:
    if not ok:
        raise SearchError(f"{where}: {message}" if where else message)


def build(kind: str, name: str, options: Mapping[str, Any], **fixed: Any) -> Any:
    """The Optuna ``kind`` ("sampler" or "pruner") ``name`` with ``fixed`` and the file's ``options``; an unknown
    name or option is a SearchError listing the valid ones (the class's signature)."""
    table = SAMPLERS if kind == "sampler" else PRUNERS
    _check(name in table, kind, f"unknown {kind} {name!r}; valid: {', '.join(table)}")
    valid = [p for p in inspect.signature(table[name]).parameters if p not in fixed]
    unknown = min(set(options) - set(valid), default=None)
    _check(unknown is None, kind, f"{kind} {name!r} has no option {unknown!r}; valid: {', '.join(valid)}")
    package = NEEDS.get(name)
    _check(not package or importlib.util.find_spec(package), kind,
           f"sampler {name!r} needs the {package!r} package: pip install {package}")
    try:
        return table[name](**fixed, **options)
    except (TypeError, ValueError) as e:
        raise SearchError(f"{kind}: {kind} {name!r}: {e}") from None


def _named(kind: str, data: dict, default: str, override: str | None, **fixed: Any) -> dict[str, Any]:
    """A file's ``sampler:`` or ``pruner:`` as ``{"name", "options", **fixed}``, checked by building it; the command
    line's ``override``, if another name, comes without the file's options (they are another class's)."""
    name = str(data.get("name", default))
    options = {k: v for k, v in data.items() if k not in ("name", *fixed)} if override in (None, "", name) else {}
    name = override or name
    build(kind, name, options, **fixed)
    return {"name": name, "options": options, **fixed}


class Param(FileModel):
    """A searched config key, sampled only where every ``when`` condition (config key -> allowed values) holds."""

    when: dict[str, Annotated[Values, BeforeValidator(lambda v: v if isinstance(v, list) else [v]),
                                AfterValidator(tuple), PlainSerializer(list)]] = {}  # held as tuples, stored as lists

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether every condition holds for ``values``; a value matches by its text too (``0.5`` = ``"0.5"``)."""
        return all(any(values.get(k) == v or str(values.get(k)) == str(v) for v in allowed)
                   for k, allowed in self.when.items())


class Choice(Param):
    type: Literal["categorical"]
    choices: Values

    def probes(self) -> tuple[Scalar, ...]:
        return tuple(self.choices)

    def suggest(self, trial: optuna.Trial, key: str) -> Scalar:
        """Sample this parameter in ``trial`` (Optuna's parameter name is the dotted key)."""
        return trial.suggest_categorical(key, list(self.choices))


class Real(Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _range(self) -> Real:
        if self.low >= self.high:
            raise ValueError(f"low must be below high, got low={self.low} high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined (Optuna samples either on a grid or on a log scale); "
                             "drop one")
        return self

    def probes(self) -> tuple[Scalar, ...]:
        return self.low, self.high

    def suggest(self, trial: optuna.Trial, key: str) -> Scalar:
        return trial.suggest_float(key, self.low, self.high, log=self.log, step=self.step)


class Integer(Real):
    type: Literal["int"]
    low: int
    high: int
    step: Annotated[int, Field(gt=0)] | None = None

    def suggest(self, trial: optuna.Trial, key: str) -> Scalar:
        return trial.suggest_int(key, self.low, self.high, log=self.log, step=self.step or 1)


class Objective(FileModel):
    metric: str = "mAP"
    direction: Literal["maximize", "minimize"] | None = None


class SearchSpace(SpecFile):
    """A validated search file, the command line's search options applied: ``sampler`` = ``{"name", "seed",
    "options"}``, ``pruner`` = ``{"name", "options"}``."""

    base: Overrides = {}
    objective: Annotated[Objective, NONE_IS_EMPTY] = Objective()
    sampler: Annotated[dict[str, Any], NONE_IS_EMPTY] = {}
    pruner: Annotated[dict[str, Any], NONE_IS_EMPTY] = {}
    n_trials: Annotated[int, Field(ge=1)] = 20
    params: Annotated[dict[str, Annotated[Choice | Real | Integer, Field(discriminator="type")]], Field(min_length=1)]

    @property
    def label(self) -> str:  # the objective as printed: "val mAP" for a metric of every validation
        metric = self.objective.metric
        return f"val {metric}" if metric in PER_EPOCH else metric

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> SearchSpace:
        """The file's own rules, then the command line's search ``options`` over the file's."""
        options = info.context.get("options") or {}
        for key in [*self.base, *self.params]:
            _check(key not in FORBIDDEN, "", f"{key!r} cannot be set by a search file ({FORBIDDEN.get(key)})")
        for key, param in self.params.items():
            _check(key not in param.when, f"params.{key}", "when cannot name the parameter itself")
        own = self.objective
        metric = options.get("metric") or own.metric
        _check(metric in METRICS, "", f"objective metric {metric!r} is not a recorded metric; valid: "
               f"{', '.join(METRICS)}")
        direction = (options.get("direction") or (own.direction if own.metric == metric else None)
                     or DEFAULT_DIRECTION.get(metric))
        _check(direction, "", f"objective metric {metric!r} needs a direction (maximize or minimize)")
        _check(direction in ("maximize", "minimize"), "",
               f"objective direction must be maximize or minimize, got {direction!r}")
        self.objective = Objective(metric=metric, direction=direction)
        seed = options.get("sampler_seed", self.sampler.get("seed", 0))  # the file's, whichever sampler
        _check(str(seed).removeprefix("-").isdigit() and not isinstance(seed, bool), "",
               f"sampler seed must be an integer (a search is replayable), got {seed!r}")
        self.sampler = _named("sampler", self.sampler, "tpe", options.get("sampler"), seed=int(seed))
        self.pruner = _named("pruner", self.pruner, "median", options.get("pruner"))
        _check(self.pruner["name"] == "none" or metric in PER_EPOCH, "",
               f"pruner {self.pruner['name']!r} needs a metric measured after every epoch ({', '.join(PER_EPOCH)}); "
               f"{metric!r} is measured once after training: set pruner: {{name: none}}")
        return self

    def resolve(self, sampled: Mapping[str, Any], cli: Mapping[str, str]) -> dict[str, str]:
        """``key=value`` overrides for ``load_config``: base (less what a preset or config=FILE sets), sampled, cli."""
        return layered_overrides(self.base, dict(sampled), dict(cli))

    def suggest(self, trial: optuna.Trial, context: Mapping[str, Any]) -> dict[str, Scalar]:
        """Sample the parameters whose ``when`` holds, in file order; ``context``: the base config's values."""
        sampled: dict[str, Scalar] = {}
        for key, param in self.params.items():
            if param.applies({**context, **sampled}):
                sampled[key] = param.suggest(trial, key)
        return sampled

    def summary(self) -> dict:
        """JSON-able description stored with the study (a parameter's ``when`` left out where it has none)."""
        params = {k: p.model_dump(mode="json", exclude=None if p.when else {"when"}) for k, p in self.params.items()}
        return {**self.model_dump(exclude={"n_trials"}), "path": str(self.path), "params": params}

    @property
    def fingerprint(self) -> str:
        """Hash of what defines a study's trials (base, params, objective); not of sampler, pruner or budget."""
        identity = {k: v for k, v in self.summary().items() if k in ("base", "params", "objective")}
        return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def check_search(space: SearchSpace, cli: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check base, command line and every parameter against the config (README "Search"); return the base config's
    values. A parameter is probed with earlier parameters at values that make its ``when`` hold, and under each
    choice of every earlier unconditional categorical one in turn (``assigner.topk`` under each ``assigner.name``)."""
    cli, where = dict(cli or {}), str(space.path)
    for key in cli:
        _check(key != "name", "command line", "'name' is set per trial by the search; remove it")
        _check(key not in space.params, "command line", f"{key!r} is a searched parameter in {where}; remove it "
               "from the command line, or from the file's params")
    checked_config(space.resolve({}, {}), f"{where}: base", SearchError)
    values = flatten(to_dict(checked_config(space.resolve({}, cli), "command line", SearchError)))
    conditions: dict[str, dict[str, Scalar]] = {}  # parameter -> earlier parameters' values under which it applies
    for name, param in space.params.items():
        at, needs = f"{where}: params.{name}", {}
        for key, allowed in param.when.items():
            if key in space.params:
                _check(key in conditions, at, f"when names {key!r}, a parameter listed after it; list {key!r} first")
                earlier = space.params[key]
                _check(not isinstance(earlier, Choice) or any(a in earlier.choices for a in allowed), at,
                       f"when {key} in {list(allowed)}, but its choices are {list(earlier.probes())}: never sampled")
                needs.update({**conditions[key], key: allowed[0]})
            elif key not in values:
                raise SearchError(f"{at}: when names {key!r}, which is neither a config key nor an earlier parameter")
            elif not param.applies(values):
                raise SearchError(f"{at}: never sampled: when {key} in {list(allowed)}, but the config has "
                                  f"{key}={values[key]!r} and no parameter sets it")
        free = {k: p.choices for k, p in space.params.items()
                if k in conditions and isinstance(p, Choice) and not p.when and k not in needs}
        conditions[name] = needs
        default = {**needs, **{k: choices[0] for k, choices in free.items()}}
        for context in [default, *({**default, k: c} for k, choices in free.items() for c in choices[1:])]:
            for value in param.probes():
                checked_config(space.resolve({**context, name: value}, cli), f"{at}={value!r}", SearchError)
    return values


def load_search(name_or_path: str, cli: Mapping[str, str] | None = None, options: Mapping[str, str] | None = None
                ) -> tuple[SearchSpace, dict[str, Any]]:
    """Read, parse and check ``sweeps/search/NAME.yaml`` (or a path) with command-line ``cli`` overrides and search
    ``options`` over the file's; return the space and the base config's values (the context of ``when``)."""
    path = find_spec(name_or_path, "search", error=SearchError)
    space = read_spec(path, SearchSpace, SearchError, options=dict(options or {}))
    return space, check_search(space, cli)
