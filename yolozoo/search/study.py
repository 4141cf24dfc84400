"""A search worker: sample a trial, train it (pruned early if hopeless), store it; until the budget is spent.

The study lives in the sweeps' storage (:func:`yolozoo.sweep.store.open_storage`: one SQLite
file or a PostgreSQL URL, heartbeats), so the same command resumes it, and N workers on one
or many machines share it: each asks Optuna for the next trial until ``n_trials`` trials
have finished (completed, pruned or failed; a trial whose worker died is re-run with the
same parameters and counts once). Workers never run a trial twice, but several starting
their last trials at the same moment may finish up to ``workers - 1`` beyond the budget.

Each trial trains like a sweep point (:mod:`yolozoo.sweep.point`: in process, or in its own
process for DDP; one W&B run, group ``search-NAME``; a record under ``results_dir/runs``)
with a :class:`~.pruning.TrialPruning` callback, and its result is stored on the trial like
a point's (:func:`yolozoo.sweep.runner.store_result`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from ..config import load_config, to_dict
from ..redact import redact
from ..sweep.point import failure_reason, needs_own_process, train_point, train_point_in_child
from ..sweep.progress import Progress, eta_seconds
from ..sweep.runner import SweepOptions, store_result
from ..sweep.store import default_storage_url, fail_stale, json_safe, open_storage, study_name, worker_id
from .params import SearchError
from .pruning import PRUNED_ATTR, TrialPruning, callback_spec, pruned_reason
from .samplers import ReplayableSampler, make_pruner
from .space import SearchSpace

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted (Ctrl-C): not counted in n_trials, the next run samples a trial in its place"


class TrialFailed(RuntimeError):
    """Raised in the objective so Optuna records the trial as FAIL; the reason is in its user attrs."""


@dataclass
class SearchOptions(SweepOptions):
    """How a search worker runs: the sweep options (storage, heartbeats, ...) plus ``n_trials``
    (None: the file's) and ``study`` (a study name instead of the one derived from the search and
    the command line)."""

    n_trials: int | None = None
    study: str | None = None


@dataclass
class Budget:
    """A study's trials by state; ``finished`` counts toward ``n_trials``."""

    completed: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed

    @classmethod
    def of(cls, trials: list[FrozenTrial]) -> Budget:
        """Count ``trials``; a failed trial that Optuna re-queued (its worker died) counts through its retry, and
        one stopped by Ctrl-C not at all."""
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        b = cls()
        for t in trials:
            if t.state == TrialState.COMPLETE:
                b.completed += 1
            elif t.state == TrialState.PRUNED:
                b.pruned += 1
            elif t.state == TrialState.FAIL and t.number not in retried and t.user_attrs.get("reason") != INTERRUPTED:
                b.failed += 1
            elif t.state == TrialState.RUNNING:
                b.running += 1
            elif t.state == TrialState.WAITING:
                b.waiting += 1
        return b


def search_study_name(space: SearchSpace, cli: Mapping[str, str], options: Mapping[str, str] | None = None) -> str:
    """``search:tal`` plus the command line's config overrides (and ``metric=``/``direction=``, if given)."""
    identity = {**cli, **{k: v for k, v in (options or {}).items() if k in ("metric", "direction") and v}}
    return study_name(f"search:{space.name}", identity)


def mark_record(path: str | None, status: str, reason: str) -> None:
    """Set ``status``/``reason`` in a run's JSON record (a pruned run trains to a normal record first)."""
    if not path or not Path(path).is_file():
        return
    record = json.loads(Path(path).read_text())
    record.update(status=status, reason=reason)
    tmp = Path(path).with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)


class SearchWorker:
    """One worker on the study of ``space`` + command-line overrides ``cli`` in ``options.storage``.

    ``context``: the base config's values (from :func:`~.space.load_search`), for ``when`` conditions.
    """

    def __init__(self, space: SearchSpace, context: Mapping[str, Any], cli: Mapping[str, str],
                 options: SearchOptions, name: str | None = None):
        self.space, self.context, self.cli, self.options = space, dict(context), dict(cli), options
        self.n_trials = options.n_trials or space.n_trials
        self.url = options.storage or default_storage_url(load_config(space.resolve({}, self.cli)).results_dir)
        self.name = options.study or name or search_study_name(space, self.cli)
        storage = open_storage(self.url, heartbeat=options.heartbeat, grace=options.grace,
                               max_retry=options.max_retry)
        sampler = ReplayableSampler(space.sampler["name"], space.sampler["seed"], space.sampler["options"])
        pruner = make_pruner(space.pruner["name"], space.pruner["options"])
        self.study = optuna.create_study(study_name=self.name, storage=storage, sampler=sampler, pruner=pruner,
                                         direction=space.objective.direction, load_if_exists=True)
        stored = self.study.user_attrs.get("fingerprint")
        if stored is not None and stored != space.fingerprint:
            raise SearchError(f"study {self.name!r} in {redact(self.url)} was started from a different {space.path} "
                              "(its base, params or objective changed): restore the file, or start a new study with "
                              "study=NEW_NAME")
        if self.study.user_attrs.get("search") not in (None, space.name):
            raise SearchError(f"study {self.name!r} in {redact(self.url)} belongs to search "
                              f"{self.study.user_attrs['search']!r}; pass study=NEW_NAME")
        for key, value in {"search": space.name, "fingerprint": space.fingerprint, "space": json_safe(space.summary()),
                           "cli": self.cli}.items():
            self.study.set_user_attr(key, value)
        self.ran = 0
        self.last: str | None = None  # what the last trial did, for the progress line

    # -- one trial ---------------------------------------------------------------------------
    def objective(self, trial: optuna.Trial) -> float:
        try:
            sampled = self.space.suggest(trial, self.context)
            return self._run_trial(trial, sampled)
        except (TrialFailed, optuna.TrialPruned):
            raise
        except Exception as e:  # a sampled config that does not load, a storage error: the trial fails
            trial.set_user_attr("reason", failure_reason(e))
            self.last = f"trial {trial.number}: FAILED: {failure_reason(e)}"
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("reason", INTERRUPTED)
            raise
        except SystemExit:  # SIGTERM: the trial stays RUNNING, goes stale, and is re-run by the next worker
            trial.set_user_attr("reason", "worker stopped by SIGTERM (pre-empted?)")
            raise

    def trial_overrides(self, trial: optuna.Trial, sampled: Mapping[str, Any]) -> dict[str, str]:
        """The trial's ``key=value`` overrides: the space's (see SearchSpace.resolve), run name and W&B group.

        A re-run of a trial whose worker died keeps that trial's run name and ``resume=auto`` continues its
        run from the last finished epoch (yolozoo/resume.py).
        """
        number = self._stored_trial(trial).system_attrs.get("failed_trial", trial.number)
        overrides = {**self.space.resolve(sampled, self.cli), "name": f"{self.space.name}-t{number}",
                     "resume": "auto"}
        overrides.setdefault("wandb.group", f"search-{self.space.name}")
        return overrides

    def _run_trial(self, trial: optuna.Trial, sampled: dict[str, Any]) -> float:
        start = time.perf_counter()
        overrides = self.trial_overrides(trial, sampled)
        # a re-run of a trial whose worker died inherits its user attrs: clear the outcome
        for key, value in {"worker": worker_id(), "overrides": overrides, "sampled": json_safe(sampled),
                           "reason": None, PRUNED_ATTR: None}.items():
            trial.set_user_attr(key, value)
        extra = {"search": {"name": self.space.name, "study": self.name, "storage": redact(self.url),
                            "trial": trial.number, "params": json_safe(sampled)}}
        cfg = load_config(overrides)
        metric, pruner = self.space.objective.metric, self.space.pruner
        if needs_own_process(cfg):
            spec = callback_spec(metric, self.url, self.name, trial.number, pruner["name"], pruner["options"])
            result = train_point_in_child(overrides, extra, Path(cfg.out_dir) / "search-trials",
                                          self.options.panel_images, callbacks=[spec])
        else:
            callback = TrialPruning(metric, trial, pruner["name"])
            result = train_point(overrides, extra, self.options.panel_images, callbacks=[callback])
        if result.get("record") is None:
            result["record"] = {"config": to_dict(cfg)}
        completed = result["status"] == "completed"
        value = store_result(trial, result, metric)
        self.ran += 1
        seconds = time.perf_counter() - start
        pruned = self._stored_trial(trial).user_attrs.get(PRUNED_ATTR) if completed else None
        if pruned is not None:
            reason = pruned_reason(pruned)
            trial.set_user_attr("reason", reason)
            mark_record(result.get("record_path"), "pruned", reason)
            self.last = f"trial {trial.number}: {reason} ({seconds:.0f} s)"
            raise optuna.TrialPruned(reason)
        if value is None:
            self.last = f"trial {trial.number}: FAILED ({seconds:.0f} s): {result['reason']}"
            raise TrialFailed(result["reason"])
        self.last = f"trial {trial.number}: completed, {self.space.objective.label} {value:.4g} ({seconds:.0f} s)"
        return value

    def _stored_trial(self, trial: optuna.Trial) -> FrozenTrial:
        """The trial as the storage has it now (a trial in its own process reported through the storage)."""
        (stored,) = [t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number]
        return stored

    # -- the loop ----------------------------------------------------------------------------
    def budget(self) -> Budget:
        return Budget.of(self.study.get_trials(deepcopy=False))

    def _report(self, progress: Progress) -> None:
        b = self.budget()
        trials = self.study.get_trials(deepcopy=False)
        eta = eta_seconds(trials, max(self.n_trials - b.finished, 0), b.running)
        counts = {"total": self.n_trials, "done": b.completed + b.pruned, "running": b.running, "failed": b.failed}
        best = ""
        if b.completed:
            t = self.study.best_trial
            best = f" | best {self.space.objective.label} {t.value:.4g} (trial {t.number}), {b.pruned} pruned"
        progress.update(counts, eta, (self.last or "") + best if (self.last or best) else None)

    def run(self) -> int:
        """Run trials until ``n_trials`` have finished (and, with ``wait``, none runs elsewhere); return how many
        this worker trained."""
        poll = min(self.options.heartbeat, 2.0)
        progress = Progress(self.space.name, self.n_trials, self.options.progress_bar)
        s = self.space
        print(f"[{s.name}] {s.path}: {len(s.params)} parameters, {s.objective.direction} {s.objective.label}, "
              f"sampler {s.sampler['name']} (seed {s.sampler['seed']}), pruner {s.pruner['name']}; "
              f"{self.n_trials} trials in study {self.name!r} in {redact(self.url)}; worker {worker_id()}", flush=True)
        waiting_announced = False
        try:
            while True:
                fail_stale(self.study)
                b = self.budget()
                if b.finished >= self.n_trials:
                    break
                if not b.waiting and b.finished + b.running >= self.n_trials:
                    if not self.options.wait:
                        break
                    if not waiting_announced:
                        print(f"[{s.name}] waiting for {b.running} trial(s) running on other workers "
                              "(taking over any whose worker dies)", flush=True)
                        waiting_announced = True
                    time.sleep(poll)
                    continue
                self.last = None
                try:
                    self.study.optimize(self.objective, n_trials=1, catch=(Exception,))
                except UpdateFinishedTrialError as e:
                    log.warning("another worker failed this worker's trial for missing heartbeats (%s); its "
                                "result is kept in the record file. A larger heartbeat= avoids this.", e)
                self._report(progress)
        finally:
            progress.close()
        return self.ran


def run_search(space: SearchSpace, context: Mapping[str, Any], cli: Mapping[str, str] | None = None,
               options: SearchOptions | None = None, search_options: Mapping[str, str] | None = None) -> SearchWorker:
    """Run one worker on ``space`` (checked by :func:`~.space.load_search`); return it (``.study``, ``.ran``).

    ``search_options``: the command line's ``metric``/``direction`` (they name the study).
    """
    from ..environment import is_rank_zero

    if not is_rank_zero():
        raise SearchError("start a search worker once per machine, not under torchrun/srun: a trial's "
                          "trainer.devices / trainer.strategy=ddp start the per-GPU processes themselves")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the worker prints its own progress and failures
    cli = dict(cli or {})
    worker = SearchWorker(space, context, cli, options or SearchOptions(),
                          name=search_study_name(space, cli, search_options))
    worker.run()
    return worker
