"""Optuna samplers and pruners by name, and the per-trial seeding that makes a search replayable.

A search file names them (``sampler: {name: tpe, seed: 0, n_startup_trials: 5}``); every other key is
passed to the Optuna class, and an unknown one is an error listing the valid ones.

Why a wrapper: an Optuna sampler seeds one random generator once, so a resumed or shared study would draw
the same "random" values again, in an order that depends on which process ran which trial.
:class:`ReplayableSampler` rebuilds the sampler before each trial with a seed derived from (seed, trial
number): trial *k* gets the same draws whoever runs it, and a resumed study continues as an uninterrupted one.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import optuna
from optuna.samplers import BaseSampler

from .params import SearchError

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
            "cmaes": optuna.samplers.CmaEsSampler, "gp": optuna.samplers.GPSampler,
            "qmc": optuna.samplers.QMCSampler, "nsgaii": optuna.samplers.NSGAIISampler}
NEEDS = {"cmaes": "cmaes", "gp": "scipy"}  # samplers that need a package beyond Optuna's own dependencies
FIXED_SEED = ("qmc",)  # QMC draws point k of one scrambled sequence: its seed must stay the same for every trial
PRUNERS = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
           "percentile": optuna.pruners.PercentilePruner, "hyperband": optuna.pruners.HyperbandPruner,
           "successive_halving": optuna.pruners.SuccessiveHalvingPruner, "threshold": optuna.pruners.ThresholdPruner}


def _make(table: dict, kind: str, name: str, kwargs: dict | None, where: str, **fixed):
    """``table[name](**fixed, **kwargs)``; an unknown name or option is a SearchError listing the valid ones."""
    if name not in table:
        raise SearchError(f"{where}: unknown {kind} {name!r}; valid: {', '.join(table)}")
    kwargs = dict(kwargs or {})
    valid = [p for p in inspect.signature(table[name]).parameters if p not in fixed]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise SearchError(f"{where}: {kind} {name!r} has no option {unknown[0]!r}; valid: {', '.join(valid)}")
    package = NEEDS.get(name) if kind == "sampler" else None
    if package and importlib.util.find_spec(package) is None:
        raise SearchError(f"{where}: sampler {name!r} needs the {package!r} package: pip install {package}")
    try:
        return table[name](**fixed, **kwargs)
    except (TypeError, ValueError) as e:
        raise SearchError(f"{where}: {kind} {name!r}: {e}") from None


def make_sampler(name: str, seed: int, kwargs: dict[str, Any] | None = None, where: str = "sampler") -> BaseSampler:
    """The Optuna sampler ``name`` (``tpe``, ``random``, ...) with ``seed`` and options ``kwargs``."""
    return _make(SAMPLERS, "sampler", name, kwargs, where, seed=seed)


def make_pruner(name: str, kwargs: dict[str, Any] | None = None, where: str = "pruner") -> optuna.pruners.BasePruner:
    """The Optuna pruner ``name`` (``median``, ``hyperband``, ``none``, ...) with options ``kwargs``."""
    return _make(PRUNERS, "pruner", name, kwargs, where)


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` (distinct per trial, fixed by the search's ``seed``)."""
    return (seed * 1_000_003 + number * 7_919 + 1) % 2**32


class ReplayableSampler(BaseSampler):
    """The sampler ``name`` with ``seed``, rebuilt before each trial with :func:`trial_seed` (module docstring)."""

    def __init__(self, name: str, seed: int, kwargs: dict[str, Any] | None = None):
        self.name, self.seed, self.kwargs = name, int(seed), dict(kwargs or {})
        self._inner = make_sampler(name, self.seed, self.kwargs)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.name not in FIXED_SEED:
            self._inner = make_sampler(self.name, trial_seed(self.seed, trial.number), self.kwargs)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: every trial's seed is derived from the trial number."""
