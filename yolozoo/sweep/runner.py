"""The one worker loop of sweeps (:mod:`.grid`) and searches (:mod:`yolozoo.search.study`): take a trial, train it,
store its outcome: its state, ``reason``, ``record`` (the path of its run record), ``worker`` and ``overrides``. A trial
whose worker died is failed by the next worker to look (:func:`.store.fail_stale`) and queued again by Optuna."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime

import optuna
from omegaconf import DictConfig
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial
from pydantic import BaseModel, Field

from ..environment import is_rank_zero
from ..pruning import PRUNED_ATTR, pruned_reason
from ..record import set_status
from .point import failure_reason, needs_own_process, train_point, train_point_in_child
from .progress import Progress
from .schema import SweepError
from .store import default_storage_url, fail_stale, open_storage, worker_id

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted (Ctrl-C): re-run the command to go on"
STOPPED = "worker stopped by SIGTERM (pre-empted?)"


class TrialFailed(RuntimeError):
    """Raised in the objective so Optuna records the trial as FAIL; the reason is in its user attrs."""


class Options(BaseModel):
    """How a worker runs: the command's options (:data:`.cli.OPTIONS`; text is converted: ``"60"`` is 60), and
    ``grace``, the seconds a trial may miss heartbeats before it counts as dead (default 3 x heartbeat)."""

    model_config = {"extra": "forbid", "validate_by_name": True}
    storage: str | None = None
    heartbeat: int = Field(60, ge=1)
    grace: int | None = None
    max_retry: int = Field(3, ge=0, alias="retries")
    wait: bool = True
    progress_bar: bool | None = None
    estimate: bool = True  # print the estimated wall time before the first point (see .estimate)
    auto_seeds: bool = True  # add the sweep file's auto seeds (max_seeds); False: the listed seeds only
    n_trials: int | None = Field(None, ge=1)
    study: str | None = None
    workers: int = Field(1, ge=1)


@dataclass
class Job:
    """What one trial trains: ``cfg``, its config resolved once from ``overrides`` (kept on the trial; a run in
    its own process resolves them there), ``extra`` record fields (``{"sweep": ...}`` or ``{"search": ...}``),
    Lightning ``callbacks`` (in process) or their JSON specs (``child_callbacks``)."""

    title: str
    cfg: DictConfig
    overrides: dict[str, str]
    extra: dict
    callbacks: list = field(default_factory=list)
    child_callbacks: list[dict] = field(default_factory=list)


class Worker:
    """One worker on the study ``study_name`` in ``options.storage``. Subclasses say which trial runs next
    (:meth:`step`), what it trains (:meth:`job`) and what follows (:meth:`after`)."""

    unit = "trial"  # for progress lines

    def __init__(self, name: str, study_name: str, results_dir: str, options: Options,
                 sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner | None = None,
                 direction: str = "maximize", metric: str = "mAP"):
        self.name, self.study_name, self.options, self.metric = name, study_name, options, metric
        self.url = options.storage or default_storage_url(results_dir)
        storage = open_storage(self.url, heartbeat=options.heartbeat, grace=options.grace, max_retry=options.max_retry)
        self.study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
                                         direction=direction, load_if_exists=True)
        self.session_start = datetime.now()
        self.ran = 0  # trials this worker trained
        self.last: str | None = None  # what the last trial did, for the progress line

    def step(self, progress: Progress) -> str:
        """``run`` (a trial is ready to take), ``wait`` (others' trials run) or ``done``."""
        raise NotImplementedError

    def job(self, trial: optuna.Trial) -> Job:
        raise NotImplementedError

    def counts(self) -> tuple[dict[str, int], float | None]:
        """``{"total", "done", "running", "failed"}`` and the ETA in seconds."""
        raise NotImplementedError

    def start(self, progress: Progress) -> None:  # before the first trial
        pass

    def after(self, job: Job, result: dict) -> None:  # after a trial trained and its outcome was stored
        pass

    def end(self) -> None:  # after the loop
        pass

    def stored(self, trial: optuna.Trial) -> FrozenTrial:
        """The trial as the storage has it now (a trial trained in its own process reports through it)."""
        return next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)

    def objective(self, trial: optuna.Trial) -> float:
        try:
            job, start = self.job(trial), time.perf_counter()
            # a re-run of a trial whose worker died inherits its user attrs: clear the outcome
            for key, value in {"worker": worker_id(), "overrides": job.overrides, "reason": None, "record": None,
                               PRUNED_ATTR: None}.items():
                trial.set_user_attr(key, value)
            if needs_own_process(job.cfg):
                result = train_point_in_child(job.cfg, job.overrides, job.extra, job.child_callbacks)
            else:
                result = train_point(job.cfg, job.extra, callbacks=job.callbacks)
            record = result["record"]
            value = (record.get("metrics") or {}).get(self.metric)
            pruned = self.stored(trial).user_attrs.get(PRUNED_ATTR) if result["status"] == "completed" else None
            if pruned is not None:
                result.update(status="pruned", reason=pruned_reason(pruned))
            elif result["status"] == "completed" and (value is None or not math.isfinite(value)):
                result.update(status="failed", reason=f"validation {self.metric} is {value} (no predictions or no "
                                                       "ground truth?)")
            if result["status"] != record["status"]:
                record.update(status=result["status"], reason=result["reason"])
                set_status(record.get("record_path"), result["status"], result["reason"])
            trial.set_user_attr("record", record.get("record_path"))
            trial.set_user_attr("reason", result["reason"])
            self.ran += 1
            self.after(job, result)
            seconds = time.perf_counter() - start
            if result["status"] == "completed":
                scores = ", ".join(f"{label} {record['metrics'][k]:.3f}" for label, k in (("mAP@0.5", "mAP50"),
                                   ("mAP", "mAP")) if record["metrics"].get(k) is not None)
                self.last = f"trial {trial.number} {job.title}: completed, {scores} ({seconds:.0f} s)"
                return float(value)
            self.last = f"trial {trial.number} {job.title}: {result['status'].upper()} ({seconds:.0f} s): " \
                        f"{result['reason']}"
            raise (optuna.TrialPruned if result["status"] == "pruned" else TrialFailed)(result["reason"])
        except (TrialFailed, optuna.TrialPruned):
            raise
        except Exception as e:  # the runner's own steps (a config that does not load, storage); training errors
            trial.set_user_attr("reason", failure_reason(e))  # are results
            self.last = f"trial {trial.number}: FAILED: {failure_reason(e)}"
            raise
        except (KeyboardInterrupt, SystemExit) as e:  # Ctrl-C: Optuna marks the trial failed, the next run goes on;
            # SIGTERM (pre-emption; Lightning raises SystemExit): the trial stays RUNNING, goes stale, is re-run
            trial.set_user_attr("reason", INTERRUPTED if isinstance(e, KeyboardInterrupt) else STOPPED)
            raise

    def report(self, progress: Progress) -> None:
        progress.update(*self.counts(), self.last)

    def run(self) -> int:
        """Take and train trials until none is left (with ``wait``: none runs elsewhere); return how many it trained."""
        progress = Progress(self.name, self.counts()[0]["total"], self.options.progress_bar, self.unit)
        waiting_announced = False
        try:
            self.start(progress)
            while True:
                fail_stale(self.study)
                step = self.step(progress)
                if step == "done" or (step == "wait" and not self.options.wait):
                    break
                if step == "wait":
                    if not waiting_announced:
                        print(f"[{self.name}] waiting for {self.counts()[0]['running']} {self.unit}(s) running on "
                              "other workers (taking over any whose worker dies)", flush=True)
                        waiting_announced = True
                    time.sleep(min(self.options.heartbeat, 2.0))
                    continue
                self.last = None
                try:
                    self.study.optimize(self.objective, n_trials=1, catch=(Exception,))
                except UpdateFinishedTrialError as e:
                    log.warning("another worker failed this worker's trial for missing heartbeats (%s); its "
                                "result is kept in the record file. A larger heartbeat= avoids this.", e)
                if self.last is not None:
                    self.report(progress)
        finally:
            progress.close()
        self.end()
        return self.ran


def check_rank_zero() -> None:
    """Refuse to start a worker in a rank other than 0 (under torchrun/srun); quiet Optuna's logging."""
    if not is_rank_zero():
        raise SweepError("start a worker once per machine, not under torchrun/srun: a run's trainer.devices / "
                         "trainer.strategy=ddp start the per-GPU processes themselves")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the worker prints its own progress and failures
