"""A sweep: a study whose trials are the grid's points, queued by the worker one at a time (:mod:`.claims`), published
records counting as completed points, and auto seeds added (see the README's Sweeps section)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import datetime

import optuna
import pandas as pd
from omegaconf import DictConfig

from ..config import load_config, to_dict
from ..environment import cpu_info
from ..record import json_safe
from ..redact import redact
from ..stats import seeds_to_add
from . import published
from .claims import GridState, conflicting_trial
from .estimate import from_calibration, from_records
from .progress import Progress, eta_seconds, format_eta
from .results import load_results, trial_record
from .runner import Job, Options, Worker, check_rank_zero
from .spec import Point, SweepSpec, point_key
from .store import study_name, worker_id

AUTO_SEED_METRIC = "mAP50"  # the metric whose paired interval decides auto seeds


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, with the worker loop (not the sampler) deciding when the sweep is done: its
    after_trial stops the study once its grid looks exhausted, and in optuna 5.0 raises KeyError for an enqueued
    trial when one grid point is left ("grid_id" is only set on trials it sampled itself)."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


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


class GridWorker(Worker):
    """One worker on the study of ``spec`` + command-line overrides ``cli`` in ``options.storage``."""

    unit = "point"

    def __init__(self, spec: SweepSpec, cli: dict[str, str], options: Options):
        self.spec, self.cli = spec, dict(cli)
        results_dir = load_config(spec.resolve({}, cli)).results_dir
        self.points = spec.points()
        self.by_key = {p.key: p for p in spec.points(spec.all_seeds)}
        # the sweep file's own points publish their records; a study with extra overrides does not
        self.publish_dir = published.published_dir(results_dir, spec.name) if published.publishable(cli) else None
        self.published = published.completed(self.publish_dir, list(self.by_key.values()))
        self.configs: dict[str, DictConfig] = {}  # point key -> its resolved config (see config)
        self.reused: list[str] = []
        self.open_rows: list[str] = []  # rows auto seeds would extend (auto_seeds=False)
        self.rng, self.collided = random.Random(f"{worker_id()}-{time.time()}"), False
        sampler = GridSampler(spec.search_space(), seed=0)
        super().__init__(spec.name, study_name(spec.name, self.cli), results_dir, options, sampler)
        for key, value in {"sweep": spec.name, "spec": json_safe(spec.summary()), "cli": self.cli,
                           "points": [p.params for p in self.points]}.items():
            self.study.set_user_attr(key, value)

    def point_overrides(self, point: Point) -> dict[str, str]:
        """The point's overrides (see SweepSpec.resolve), seed, run name and W&B group; ``resume=auto``: a point
        whose worker died continues from its last finished epoch (yolozoo/resume.py)."""
        overrides = {**self.spec.resolve(point.axis_overrides, self.cli), "seed": str(point.seed),
                     "name": f"{self.spec.name}-{point.slug}", "resume": "auto"}
        overrides.setdefault("wandb.group", self.spec.name)  # reports find a sweep's W&B runs by group
        return overrides

    def config(self, point: Point) -> DictConfig:
        """The point's config, resolved once from :meth:`point_overrides` and handed to its run."""
        if point.key not in self.configs:
            self.configs[point.key] = load_config(self.point_overrides(point))
        return self.configs[point.key]

    def reuse_published(self, points: list[Point]) -> None:
        """Publish, for each point not yet published whose resolved config and seed a completed record of
        another sweep ran, that record as its own (``reused_from``) instead of training it."""
        todo = [p for p in points if p.key not in self.published] if self.publish_dir else []
        found = published.reusable(self.publish_dir.parent, self.spec.name) if todo else {}
        for point in todo if found else []:
            path = published.reuse(self.publish_dir, point, to_dict(self.config(point)), self.point_overrides(point),
                                   found)
            if path is not None:
                self.published[point.key] = published.read_published(path)
                self.reused.append(f"{point.title} ({self.published[point.key]['reused_from']})")

    # -- Worker hooks --------------------------------------------------------------------------
    def state(self) -> GridState:
        return GridState(self.study.get_trials(deepcopy=False), self.points, set(self.published))

    def counts(self) -> tuple[dict[str, int], float | None]:
        counts = self.state().counts()
        left = counts["total"] - counts["done"] - counts["failed"]
        return counts, eta_seconds(self.study.get_trials(deepcopy=False), left, counts["running"])

    def start(self, progress: Progress) -> None:
        print(f"[{self.name}] {self.spec.path}: {len(self.points)} points "
              f"({' x '.join(str(len(v)) for v in self.spec.axes.values())} x {len(self.spec.seeds)} seeds), "
              f"study {self.study_name!r} in {redact(self.url)}; worker {worker_id()}", flush=True)
        self.reuse_published(self.points)
        if self.reused:
            print(f"[{self.name}] {len(self.reused)} point(s) reuse the record of the same run (same config and "
                  f"seed) in another sweep: {', '.join(self.reused)}", flush=True)
        self.report(progress)
        todo = self.state().todo(self.session_start) if self.options.estimate else []
        if not todo:
            return
        # what the points left will cost on this machine, from published records or a short calibration
        cpu, records = cpu_info(), published.read_records(self.publish_dir) if self.publish_dir else []
        est = from_records(records, len(todo), cpu["model"])
        if est is None:
            try:
                est = from_calibration(self.config(todo[0]), len(todo))
            except Exception as e:  # an estimate never stops a sweep; the point itself reports real errors
                print(f"[{self.name}] no wall-time estimate ({type(e).__name__}: {e})", flush=True)
                return
        print(f"[{self.name}] {len(todo)} point(s) to run: estimated {'at least ' if est.lower_bound else ''}"
              f"{format_eta(est.seconds)} for one worker on {cpu['model']} ({cpu['isa']}; {est.how})", flush=True)

    def step(self, progress: Progress) -> str:
        state = self.state()
        if state.waiting:  # a queued point (another worker's, or a dead one's retry): take it
            return "run"
        todo = state.todo(self.session_start)
        new = self.add_seeds(state) if not todo and not state.running else []
        if new:
            self.study.set_user_attr("points", [p.params for p in self.points])
            print(f"[{self.name}] auto seeds: {len(new)} more point(s) where the paired {AUTO_SEED_METRIC} "
                  f"interval against the baseline still contains 0 (at most {self.spec.max_seeds} seeds a row): "
                  f"{', '.join(p.title for p in new)}", flush=True)
            progress.set_total(len(self.points))
            return self.step(progress)
        if not todo:
            return "wait" if state.running else "done"
        point = todo[0]
        if self.collided:  # another worker took the point this one chose: spread out over the first few
            time.sleep(self.rng.uniform(0.1, 1.0))
            point = self.rng.choice(todo[:8])
        self.study.enqueue_trial(point.params)
        return "run"

    def job(self, trial: optuna.Trial) -> Job:
        self.collided = False
        try:
            params = {k: trial.suggest_categorical(k, values) for k, values in self.spec.search_space().items()}
        except ValueError as e:  # a point queued from an older version of the sweep file
            trial.set_user_attr("superseded_by", -1)
            raise optuna.TrialPruned(f"queued point is not in the current grid ({e})") from None
        point = self.by_key[point_key(params)]
        other = conflicting_trial(self.study, trial.number, point)
        if other is not None:
            trial.set_user_attr("superseded_by", other.number)
            self.collided = True
            self.last = f"trial {trial.number} {point.title}: taken by another worker, skipped"
            raise optuna.TrialPruned(f"{point.title} is already {other.state.name.lower()} in trial {other.number}")
        trial.set_user_attr("fingerprint", point.fingerprint)
        self.point = point
        extra = {"sweep": {"name": self.spec.name, "study": self.study_name, "storage": redact(self.url),
                           "trial": trial.number, "point": point.labels, "seed": point.seed}}
        return Job(point.title, self.config(point), self.point_overrides(point), extra)

    def after(self, job: Job, result: dict) -> None:
        if self.publish_dir is not None and result["record"].get("record_path"):  # rank 0's record
            path = published.publish(self.publish_dir, self.point, result["record"], job.overrides)
            if result["status"] == "completed":
                self.published[self.point.key] = published.read_published(path)

    def add_seeds(self, state: GridState) -> list[Point]:
        """Auto seeds (``max_seeds``): the next seed for rows whose interval against their baseline is open."""
        if not self.spec.max_seeds:
            return []
        values: dict[str, dict[int, float]] = {}
        for key, point in self.by_key.items():
            record = self.published.get(key) or (trial_record(state.completed[key]) if key in state.completed else {})
            value = (record.get("metrics") or {}).get(AUTO_SEED_METRIC)
            if value is not None and math.isfinite(value):
                values.setdefault(point_key(point.labels), {})[point.seed] = float(value)
        rows = {point_key(p.labels): p.labels for p in self.points}
        baselines = {row: point_key({**labels, **self.spec.baseline}) for row, labels in rows.items()}
        add = seeds_to_add(values, baselines, self.spec.all_seeds, self.spec.max_seeds)
        if not self.options.auto_seeds:
            self.open_rows = [" ".join(f"{k}={v}" for k, v in rows[row].items()) for row in add]
            return []
        have = {p.key for p in self.points}
        new = [p for p in (self.spec.point(rows[row], seed) for row, seeds in add.items() for seed in seeds)
               if p.key not in have]
        self.points += new
        self.reuse_published(new)
        return new

    def end(self) -> None:
        if self.open_rows:
            print(f"[{self.name}] auto seeds off (auto_seeds=false): {len(self.open_rows)} row(s) whose paired "
                  f"{AUTO_SEED_METRIC} interval against the baseline still contains 0 would get another seed: "
                  f"{'; '.join(self.open_rows)}. Run the sweep again without auto_seeds=false to add them.",
                  flush=True)

    def results(self) -> pd.DataFrame:
        """This study's rows: the store's, with each published point's record in place of its store row."""
        df = load_results(self.url, self.spec.name)
        df = df[df["study"] == self.study_name]
        if self.publish_dir is None or not self.publish_dir.is_dir():
            return df.reset_index(drop=True)
        pub = published.records_frame(published.read_records(self.publish_dir), self.spec.name, list(self.spec.axes))
        keys = [point_key({**p, "seed": s}) for p, s in zip(pub["point"], pub["seed"])]
        pub = pub[[k in self.by_key for k in keys]]  # records of points no longer in the grid are left out
        have = {point_key({**p, "seed": s}) for p, s in zip(pub["point"], pub["seed"])}
        rest = df[[point_key({**p, "seed": s}) not in have for p, s in zip(df["point"], df["seed"])]]
        return pd.concat([pub, rest], ignore_index=True) if len(rest) else pub.reset_index(drop=True)


def run_sweep(spec: SweepSpec, cli: dict[str, str] | None = None, options: Options | None = None) -> SweepOutcome:
    """Run one worker on the sweep ``spec`` (checked by :func:`~.spec.load_sweep`)."""
    check_rank_zero()
    worker = GridWorker(spec, cli or {}, options or Options())
    ran = worker.run()
    wall = (datetime.now() - worker.session_start).total_seconds()
    return SweepOutcome(worker.study_name, worker.url, worker.results(), ran, wall)
