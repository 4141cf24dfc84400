"""A search: the sweeps' worker loop on a study whose sampler proposes each trial and whose pruner may stop it
(README "Search")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from ..config import load_config
from ..pruning import TrialPruning
from ..record import json_safe
from ..redact import redact
from ..sweep.progress import Progress, eta_seconds
from ..sweep.runner import INTERRUPTED, Job, Options, Worker, check_rank_zero
from ..sweep.store import open_storage, study_name, worker_id
from .space import SearchError, SearchSpace, build


@BaseSampler.register
class ReplayableSampler:
    """The sampler ``name`` with ``options``, rebuilt before each trial with a seed from (``seed``, trial number), so
    trial *k* gets the same draws whoever runs it, in a resumed or shared study too (README "Search")."""

    def __init__(self, name: str, seed: int, options: dict[str, Any]):
        self.name, self.seed, self.options = name, seed, options
        self._inner = build("sampler", name, options, seed=seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.name != "qmc":  # QMC draws point k of one scrambled sequence: its seed must stay the same
            seed = (self.seed * 1_000_003 + trial.number * 7_919 + 1) % 2**32
            self._inner = build("sampler", self.name, self.options, seed=seed)
        self._inner.before_trial(study, trial)

    def __getattr__(self, attr: str) -> Any:  # the rest of BaseSampler's interface: the current sampler's
        if attr == "_inner":  # not set yet (a copy or unpickling looks up attributes first): no recursion
            raise AttributeError(attr)
        return getattr(self._inner, attr)


def count_trials(trials: list[FrozenTrial]) -> Counter[str]:
    """``trials`` by state (Optuna's, lower case: ``complete``, ``fail``, ...) and ``finished`` (what counts toward
    ``n_trials``, README "Search"); a failed trial Optuna re-queued (its worker died) counts through its retry."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    counts = Counter(t.state.name.lower() for t in trials if t.state != TrialState.FAIL
                     or (t.number not in retried and t.user_attrs.get("reason") != INTERRUPTED))
    counts["finished"] = counts["complete"] + counts["pruned"] + counts["fail"]
    return counts


def search_study_name(space: SearchSpace, cli: Mapping[str, str], options: Mapping[str, str] | None = None) -> str:
    """``search:tal`` plus the command line's config overrides (and ``metric=``/``direction=``, if given)."""
    identity = {**cli, **{k: v for k, v in (options or {}).items() if k in ("metric", "direction") and v}}
    return study_name(f"search:{space.name}", identity)


def pruning_from_storage(metric: str, storage: str, study: str, number: int, pruner: str,
                         pruner_options: dict) -> TrialPruning:
    """The pruning callback of a trial trained in its own process, built there from :meth:`SearchWorker.job`'s JSON
    spec: it reaches the running trial ``number`` through ``storage`` (only rank 0 opens it)."""
    def open_trial() -> optuna.Trial:
        store = open_storage(storage)
        loaded = optuna.load_study(study_name=study, storage=store, pruner=build("pruner", pruner, pruner_options),
                                   sampler=optuna.samplers.RandomSampler(seed=0))
        study_id = store.get_study_id_from_name(study)
        return optuna.Trial(loaded, store.get_trial_id_from_study_id_trial_number(study_id, number))

    return TrialPruning(metric, open_trial, pruner)


class SearchWorker(Worker):
    """One worker on the study of ``space`` + command-line overrides ``cli`` (+ ``search_options``) in
    ``options.storage``; ``context``: the base config's values (from :func:`~.space.load_search`), for ``when``."""

    def __init__(self, space: SearchSpace, context: Mapping[str, Any], cli: Mapping[str, str], options: Options,
                 search_options: Mapping[str, str] | None = None):
        self.space, self.context, self.cli = space, dict(context), dict(cli)
        self.n_trials = options.n_trials or space.n_trials
        super().__init__(space.name, options.study or search_study_name(space, self.cli, search_options),
                         load_config(space.resolve({}, self.cli)).results_dir, options,
                         ReplayableSampler(**space.sampler), build("pruner", space.pruner["name"],
                         space.pruner["options"]), space.objective.direction, space.objective.metric)
        attrs = self.study.user_attrs
        if attrs.get("fingerprint", space.fingerprint) != space.fingerprint:
            raise SearchError(f"study {self.study_name!r} in {redact(self.url)} was started from a different "
                              f"{space.path} (its base, params or objective changed): restore the file, or start a "
                              "new study with study=NEW_NAME")
        if attrs.get("search", space.name) != space.name:
            raise SearchError(f"study {self.study_name!r} in {redact(self.url)} belongs to search "
                              f"{attrs['search']!r}; pass study=NEW_NAME")
        for key, value in {"search": space.name, "fingerprint": space.fingerprint, "space": json_safe(space.summary()),
                           "cli": self.cli}.items():
            self.study.set_user_attr(key, value)

    def counts(self) -> tuple[dict[str, int], float | None]:
        trials = self.study.get_trials(deepcopy=False)
        b = count_trials(trials)  # with the progress line's keys
        b["total"], b["done"], b["failed"] = self.n_trials, b["complete"] + b["pruned"], b["fail"]
        return b, eta_seconds(trials, max(self.n_trials - b["finished"], 0), b["running"])

    def start(self, progress: Progress) -> None:
        s = self.space
        print(f"[{s.name}] {s.path}: {len(s.params)} parameters, {s.objective.direction} {s.label}, "
              f"sampler {s.sampler['name']} (seed {s.sampler['seed']}), pruner {s.pruner['name']}; "
              f"{self.n_trials} trials in study {self.study_name!r} in {redact(self.url)}; worker {worker_id()}",
              flush=True)

    def step(self, progress: Progress) -> str:
        b = self.counts()[0]
        if b["finished"] >= self.n_trials:
            return "done"
        return "wait" if not b["waiting"] and b["finished"] + b["running"] >= self.n_trials else "run"

    def job(self, trial: optuna.Trial) -> Job:
        """A re-run of a trial whose worker died keeps that trial's run name; ``resume=auto`` continues its run."""
        sampled = self.space.suggest(trial, self.context)
        number = self.stored(trial).system_attrs.get("failed_trial", trial.number)
        overrides = {**self.space.resolve(sampled, self.cli), "name": f"{self.space.name}-t{number}", "resume": "auto"}
        overrides.setdefault("wandb.group", f"search-{self.space.name}")
        extra = {"search": {"name": self.space.name, "study": self.study_name, "storage": redact(self.url),
                            "trial": trial.number, "params": json_safe(sampled)}}
        pruner = self.space.pruner
        spec = {"target": "yolozoo.search.study:pruning_from_storage",
                "kwargs": {"metric": self.metric, "storage": self.url, "study": self.study_name, "number": trial.number,
                           "pruner": pruner["name"], "pruner_options": pruner["options"]}}
        title = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sampled.items())
        pruning = TrialPruning(self.metric, trial, pruner["name"])
        return Job(title, load_config(overrides), overrides, extra, [pruning], [spec])

    def report(self, progress: Progress) -> None:
        (b, eta), best = self.counts(), ""
        if b["complete"]:
            t = self.study.best_trial
            best = f" | best {self.space.label} {t.value:.4g} (trial {t.number}), {b['pruned']} pruned"
        progress.update(b, eta, (self.last or "") + best or None)


def run_search(space: SearchSpace, context: Mapping[str, Any], cli: Mapping[str, str] | None = None,
               options: Options | None = None, search_options: Mapping[str, str] | None = None) -> SearchWorker:
    """Run one worker on ``space`` (checked by :func:`~.space.load_search`); return it (``.study``, ``.ran``).
    ``search_options``: the command line's ``metric``/``direction`` (they name the study)."""
    check_rank_zero()
    worker = SearchWorker(space, context, cli or {}, options or Options(), search_options)
    worker.run()
    return worker
