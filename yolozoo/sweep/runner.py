"""A sweep worker: claim grid points from the study one at a time, train each, store the result.

Start the same command again, on this machine or another with the same ``storage=``, and
it does the right thing: completed points are skipped, points that failed before it started
are retried, N workers split the grid (see :mod:`.claims` for why no point runs twice), and a
point whose worker died (no heartbeat for the grace period) is failed by the next worker to
look and queued again by Optuna's ``RetryHeartbeatStaleTrialCallback``. A worker with nothing
left to claim waits while other workers' points run, so it can take over a dead one.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
import pandas as pd
from optuna.exceptions import UpdateFinishedTrialError

from ..config import load_config, to_dict
from ..environment import is_rank_zero
from ..redact import redact
from ..stats import seeds_to_add
from . import published
from .claims import GridState, choose, conflicting_trial
from .point import failure_reason, needs_own_process, train_point, train_point_in_child
from .progress import Progress, eta_seconds, point_message
from .results import load_results
from .spec import Point, SweepError, SweepSpec, point_key
from .store import default_storage_url, fail_stale, json_safe, open_storage, study_name, worker_id

log = logging.getLogger(__name__)


AUTO_SEED_METRIC = "mAP50"  # the metric whose paired interval decides auto seeds


def rank_zero_record(result: dict) -> bool:
    """Whether a point's result carries a record to publish (a multi-GPU point's other ranks write none)."""
    return isinstance(result.get("record"), dict) and "status" in result["record"]


class PointFailed(RuntimeError):
    """Raised in the objective so Optuna records the trial as FAIL; the reason is in its user attrs."""


def store_result(trial: optuna.Trial, result: dict, metric: str = "mAP") -> float | None:
    """Put a point's result in the trial's user attrs (JSON-safe; NaN -> None); return its ``metric``.

    A completed point whose ``metric`` is missing or not finite is turned into a failure
    (``result`` is updated: status, reason). Also used by :mod:`yolozoo.search` for its trials.
    """
    record = result["record"]
    env = record.get("environment") or {}
    attrs = {
        "config": record.get("config"), "metrics": record.get("metrics") or {},
        "history": json_safe(record.get("history") or [], digits=6),
        "environment": {k: env.get(k) for k in ("git_commit", "device", "cpu", "host", "python", "packages")},
        "record": result.get("record_path"), "run_dir": record.get("run_dir"),
        "checkpoint": record.get("checkpoint"), "wandb_dir": record.get("wandb_dir"), "reason": result["reason"],
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, json_safe(value))
    if result["status"] != "completed":
        return None
    value = (record.get("metrics") or {}).get(metric)
    if value is None or not math.isfinite(value):
        result.update(status="failed", reason=f"validation {metric} is {value} (no predictions or no ground truth?)")
        trial.set_user_attr("reason", result["reason"])
        return None
    return float(value)


class SweepGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, with the worker loop (not the sampler) deciding when the sweep is done.

    GridSampler.after_trial stops the study once its grid looks exhausted, and in optuna 5.0
    raises KeyError for an enqueued trial when one grid point is left ("grid_id" is only set
    on trials it sampled itself). Points are queued explicitly here, so that step is skipped.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


@dataclass
class SweepOptions:
    """How a worker runs. ``heartbeat``: seconds between heartbeats; a point silent for ``grace``
    (default 3 x heartbeat) counts as dead and is re-run, at most ``max_retry`` times."""

    storage: str | None = None
    heartbeat: int = 60
    grace: int | None = None
    max_retry: int = 3
    wait: bool = True
    progress_bar: bool | None = None
    panel_images: int = 8
    estimate: bool = True  # print the estimated wall time before the first point (see .estimate)
    auto_seeds: bool = True  # add the sweep file's auto seeds (max_seeds); False: the listed seeds only


@dataclass
class SweepOutcome:
    study: str
    storage: str
    results: pd.DataFrame  # this study's rows (see load_results), published records included
    ran: int  # points this worker trained
    wall_s: float = 0.0  # this worker's wall time

    @property
    def failed(self) -> int:
        return int((self.results["status"] == "failed").sum())


class SweepWorker:
    """One worker on the study of ``spec`` + command-line overrides ``cli`` in ``options.storage``."""

    def __init__(self, spec: SweepSpec, cli: dict[str, str], options: SweepOptions):
        self.spec, self.cli, self.options = spec, dict(cli), options
        results_dir = load_config(spec.resolve({}, cli)).results_dir
        self.url = options.storage or default_storage_url(results_dir)
        self.name = study_name(spec.name, self.cli)
        self.points = spec.points()
        self.by_key = {p.key: p for p in spec.points(spec.all_seeds)}
        # the sweep file's own points publish their records; a study with extra overrides does not
        self.publish_dir = (published.published_dir(results_dir, spec.name) if published.publishable(self.cli)
                            else None)
        self.published = published.completed(self.publish_dir, list(self.by_key.values()))
        self.reused: list[str] = []
        self.open_rows: list[str] = []  # rows auto seeds would extend (auto_seeds=False)
        self.space = spec.search_space()
        storage = open_storage(self.url, heartbeat=options.heartbeat, grace=options.grace,
                               max_retry=options.max_retry)
        self.study = optuna.create_study(study_name=self.name, storage=storage, direction="maximize",
                                         sampler=SweepGridSampler(self.space, seed=0), load_if_exists=True)
        self.study.set_user_attr("sweep", spec.name)
        self.study.set_user_attr("spec", json_safe(spec.summary()))
        self.study.set_user_attr("cli", self.cli)
        self.study.set_user_attr("points", [p.params for p in self.points])
        self.last: tuple | None = None  # (trial number, point, result or None if superseded, seconds)
        self.ran = 0

    def reuse_published(self, points: list[Point]) -> None:
        """Points (of ``points``) not yet published whose resolved config and seed a completed record of another
        sweep ran: publish that record as theirs (``reused_from``) instead of training them."""
        if self.publish_dir is None:
            return
        todo = [p for p in points if p.key not in self.published]
        found = published.reusable(self.publish_dir.parent, self.spec.name) if todo else {}
        for point in todo if found else []:
            overrides = self.point_overrides(point)
            path = published.reuse(self.publish_dir, point, to_dict(load_config(overrides)), overrides, found)
            if path is not None:
                self.published[point.key] = published.read_record(path)
                self.reused.append(f"{point.title} ({self.published[point.key]['reused_from']})")

    # -- one point ---------------------------------------------------------------------------
    def point_overrides(self, point: Point) -> dict[str, str]:
        """The sweep's overrides for the point (see SweepSpec.resolve), plus the seed, run name and W&B group.

        ``resume=auto``: a point whose worker died continues from its last finished epoch (yolozoo/resume.py).
        """
        overrides = {**self.spec.resolve(point.axis_overrides, self.cli), "seed": str(point.seed),
                     "name": f"{self.spec.name}-{point.slug}", "resume": "auto"}
        overrides.setdefault("wandb.group", self.spec.name)  # reports find a sweep's W&B runs by group
        return overrides

    def objective(self, trial: optuna.Trial) -> float:
        try:
            params = {name: trial.suggest_categorical(name, choices) for name, choices in self.space.items()}
        except ValueError as e:  # a point queued from an older version of the sweep file
            trial.set_user_attr("superseded_by", -1)
            raise optuna.TrialPruned(f"queued point is not in the current grid ({e})") from None
        point = self.by_key[point_key(params)]
        other = conflicting_trial(self.study, trial.number, point)
        if other is not None:
            trial.set_user_attr("superseded_by", other.number)
            self.last = (trial.number, point, None, 0.0)
            raise optuna.TrialPruned(f"{point.title} is already {other.state.name.lower()} in trial {other.number}")
        try:
            return self._run_point(trial, point)
        except PointFailed:
            raise
        except Exception as e:  # the runner's own steps (config, storage); training errors are results
            trial.set_user_attr("reason", failure_reason(e))
            raise
        except KeyboardInterrupt:  # Optuna marks the trial failed: the next run of the command retries it
            trial.set_user_attr("reason", "interrupted (Ctrl-C): re-run the command to retry")
            raise
        except SystemExit:  # SIGTERM (pre-emption; Lightning raises it): the trial stays RUNNING, goes stale, is re-run
            trial.set_user_attr("reason", "worker stopped by SIGTERM (pre-empted?)")
            raise

    def _run_point(self, trial: optuna.Trial, point: Point) -> float:
        overrides = self.point_overrides(point)
        for key, value in {"sweep": self.spec.name, "point": point.labels, "seed": point.seed, "worker": worker_id(),
                           "fingerprint": point.fingerprint, "overrides": overrides, "reason": None}.items():
            trial.set_user_attr(key, value)
        extra = {"sweep": {"name": self.spec.name, "study": self.name, "storage": redact(self.url),
                           "trial": trial.number, "point": point.labels, "seed": point.seed}}
        start = time.perf_counter()
        cfg = load_config(overrides)
        if needs_own_process(cfg):
            result = train_point_in_child(overrides, extra, Path(cfg.out_dir) / "sweep-points",
                                          self.options.panel_images)
        else:
            result = train_point(overrides, extra, self.options.panel_images)
        if result.get("record") is None:
            result["record"] = {"config": to_dict(cfg)}
        value = self._store(trial, result)
        if self.publish_dir is not None and rank_zero_record(result):
            path = published.publish(self.publish_dir, point, result["record"], overrides)
            trial.set_user_attr("published", str(path))
            if result["status"] == "completed":
                self.published[point.key] = result["record"]
        self.ran += 1
        self.last = (trial.number, point, result, time.perf_counter() - start)
        if result["status"] != "completed":
            raise PointFailed(result["reason"])
        return value

    def _store(self, trial: optuna.Trial, result: dict) -> float | None:
        return store_result(trial, result)

    # -- the loop ----------------------------------------------------------------------------
    def _state(self) -> GridState:
        return GridState.of(self.study.get_trials(deepcopy=False), self.points, set(self.published))

    def _add_seeds(self, state: GridState) -> list[Point]:
        """Auto seeds (``max_seeds``): the next seed for rows whose interval against their baseline is open."""
        if not self.spec.max_seeds:
            return []
        values: dict[str, dict[int, float]] = {}
        for key, point in self.by_key.items():
            metrics = None
            if key in self.published:
                metrics = self.published[key].get("metrics")
            elif key in state.completed:
                metrics = state.completed[key].user_attrs.get("metrics")
            value = (metrics or {}).get(AUTO_SEED_METRIC)
            if value is not None and math.isfinite(value):
                values.setdefault(point_key(point.labels), {})[point.seed] = float(value)
        rows = {point_key(p.labels): p.labels for p in self.points}
        baselines = {row: point_key(self.spec.baseline_labels(labels)) for row, labels in rows.items()}
        add = seeds_to_add(values, baselines, self.spec.all_seeds, self.spec.max_seeds)
        if not self.options.auto_seeds:
            self.open_rows = [" ".join(f"{k}={v}" for k, v in rows[row].items()) for row in add]
            return []
        have = {p.key for p in self.points}
        new = [self.spec.point(rows[row], seed) for row, seeds in add.items() for seed in seeds]
        new = [p for p in new if p.key not in have]
        self.points += new
        self.reuse_published(new)
        return new

    def _report(self, progress: Progress) -> None:
        trials = self.study.get_trials(deepcopy=False)
        counts = GridState.of(trials, self.points, set(self.published)).counts()
        eta = eta_seconds(trials, counts["total"] - counts["done"] - counts["failed"], counts["running"])
        message = None
        if self.last is not None:
            number, point, result, seconds = self.last
            message = (point_message(point.title, number, result, seconds) if result is not None else
                       f"trial {number} {point.title}: taken by another worker, skipped")
        progress.update(counts, eta, message)

    def _announce_estimate(self, session_start: datetime) -> None:
        """Print what the points left will cost on this machine, from records or a short calibration."""
        from ..environment import cpu_info
        from .estimate import from_calibration, from_records
        from .progress import format_eta

        todo = self._state().todo(session_start)
        if not todo:
            return
        records = published.read_records(self.publish_dir) if self.publish_dir and self.publish_dir.is_dir() else []
        cpu = cpu_info()
        est = from_records(records, len(todo), cpu["model"])
        if est is None:
            try:
                est = from_calibration(load_config(self.point_overrides(todo[0])), len(todo))
            except Exception as e:  # an estimate never stops a sweep; the point itself reports real errors
                print(f"[{self.spec.name}] no wall-time estimate ({type(e).__name__}: {e})", flush=True)
                return
        print(f"[{self.spec.name}] {len(todo)} point(s) to run: estimated {'at least ' if est.lower_bound else ''}"
              f"{format_eta(est.seconds)} for one worker on {cpu['model']} ({cpu['isa']}; {est.how})", flush=True)

    def run(self) -> SweepOutcome:
        """Claim and run points until none is left to claim (and, with ``wait``, none runs elsewhere)."""
        session_start = datetime.now()
        rng = random.Random(f"{worker_id()}-{time.time()}")
        poll = min(self.options.heartbeat, 2.0)  # while waiting for other workers' points
        progress = Progress(self.spec.name, len(self.points), self.options.progress_bar)
        print(f"[{self.spec.name}] {self.spec.path}: {len(self.points)} points "
              f"({' x '.join(str(len(v)) for v in self.spec.axes.values())} x {len(self.spec.seeds)} seeds), "
              f"study {self.name!r} in {redact(self.url)}; worker {worker_id()}", flush=True)
        self.reuse_published(self.points)
        if self.reused:
            print(f"[{self.spec.name}] {len(self.reused)} point(s) reuse the record of the same run (same config and "
                  f"seed) in another sweep: {', '.join(self.reused)}", flush=True)
        self._report(progress)
        if self.options.estimate:
            self._announce_estimate(session_start)
        spread, waiting_announced = False, False
        try:
            while True:
                fail_stale(self.study)
                state = self._state()
                todo = state.todo(session_start)
                if not state.waiting:
                    new = self._add_seeds(state) if not todo and not state.running else []
                    if new:
                        self.study.set_user_attr("points", [p.params for p in self.points])
                        print(f"[{self.spec.name}] auto seeds: {len(new)} more point(s) where the paired "
                              f"{AUTO_SEED_METRIC} interval against the baseline still contains 0 (at most "
                              f"{self.spec.max_seeds} seeds a row): {', '.join(p.title for p in new)}", flush=True)
                        progress.set_total(len(self.points))
                        continue
                    if not todo:
                        if state.running and self.options.wait:
                            if not waiting_announced:
                                print(f"[{self.spec.name}] waiting for {len(state.running)} point(s) running on other "
                                      "workers (taking over any whose worker dies)", flush=True)
                                waiting_announced = True
                            time.sleep(poll)
                            continue
                        break
                    point = choose(todo, rng, spread)
                    self.study.enqueue_trial(point.params, user_attrs={"point": point.labels, "seed": point.seed})
                self.last = None
                try:
                    self.study.optimize(self.objective, n_trials=1, catch=(Exception,))
                except UpdateFinishedTrialError as e:
                    log.warning("another worker failed this worker's trial for missing heartbeats (%s); its "
                                "result is kept in the record file. A larger heartbeat= avoids this.", e)
                spread = self.last is not None and self.last[2] is None
                if spread:
                    time.sleep(rng.uniform(0.1, 1.0))
                if self.last is not None:
                    self._report(progress)
        finally:
            progress.close()
        if self.open_rows:
            print(f"[{self.spec.name}] auto seeds off (auto_seeds=false): {len(self.open_rows)} row(s) whose paired "
                  f"{AUTO_SEED_METRIC} interval against the baseline still contains 0 would get another seed: "
                  f"{'; '.join(self.open_rows)}. Run the sweep again without auto_seeds=false to add them.",
                  flush=True)
        wall = (datetime.now() - session_start).total_seconds()
        return SweepOutcome(self.name, self.url, self.results(), self.ran, wall)

    def results(self) -> pd.DataFrame:
        """This study's rows: the store's, with each published point's record in place of its store row."""
        df = load_results(self.url, self.spec.name)
        df = df[df["study"] == self.name]
        if self.publish_dir is None or not self.publish_dir.is_dir():
            return df.reset_index(drop=True)
        pub = published.records_frame(published.read_records(self.publish_dir), self.spec.name, list(self.spec.axes))
        keys = [point_key({**p, "seed": s}) for p, s in zip(pub["point"], pub["seed"])]
        pub = pub[[k in self.by_key for k in keys]]  # records of points no longer in the grid are left out
        have = {point_key({**p, "seed": s}) for p, s in zip(pub["point"], pub["seed"])}
        rest = df[[point_key({**p, "seed": s}) not in have for p, s in zip(df["point"], df["seed"])]]
        return pd.concat([pub, rest], ignore_index=True) if len(rest) else pub.reset_index(drop=True)


def run_sweep(spec: SweepSpec, cli: dict[str, str] | None = None, options: SweepOptions | None = None
              ) -> SweepOutcome:
    """Run one worker on the sweep ``spec`` (already checked by :func:`~.spec.load_sweep`)."""
    if not is_rank_zero():
        raise SweepError("start a sweep worker once per machine, not under torchrun/srun: a point's "
                         "trainer.devices / trainer.strategy=ddp start the per-GPU processes themselves")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the worker prints its own progress and failures
    return SweepWorker(spec, cli or {}, options or SweepOptions()).run()
