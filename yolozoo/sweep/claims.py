"""Which grid point a worker runs next, and the check that no point ever runs twice.

Optuna 5.0's GridSampler counts a *failed* point as visited (never retried) and, once every point has
started, hands a *running* one to the next worker. So each worker queues the exact point it wants
(``study.enqueue_trial``; Optuna pops queued trials atomically, see :mod:`.store`), and before training
checks that no *other* trial holds it, RUNNING or COMPLETE; if one does, it steps back (PRUNED,
``superseded_by``). That suffices: a trial's point is stored before it turns RUNNING, and every check runs
after its own trial turned RUNNING, so of two trials on one point the later check sees the other (unless
that one failed: then running the point is a retry).
"""

from __future__ import annotations

from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from .spec import Point, point_key


def trial_params(trial: FrozenTrial) -> dict | None:
    """The point a trial runs: its queued parameters with those already suggested (a worker killed between
    two ``suggest_categorical`` calls leaves only part of its point in ``params``)."""
    params = {**(trial.system_attrs.get("fixed_params") or {}), **trial.params}
    return params or None


def trial_key(trial: FrozenTrial) -> str | None:
    params = trial_params(trial)
    return point_key(params) if params else None


def is_superseded(trial: FrozenTrial) -> bool:
    """A trial that stepped back because another held its point (not a result of that point)."""
    return "superseded_by" in trial.user_attrs


class GridState:
    """Each grid point's trials, grouped by state (superseded trials left out); ``published``: keys of points
    completed in a published record (see .published)."""

    def __init__(self, trials: list[FrozenTrial], points: list[Point], published: set[str] = frozenset()):
        self.points, self.published = points, set(published)
        self.completed: dict[str, FrozenTrial] = {}  # with the point's current overrides
        self.running, self.waiting, self.failed = {}, {}, {}  # failed: the latest failure
        fingerprints = {p.key: p.fingerprint for p in points}
        groups = {TrialState.RUNNING: self.running, TrialState.WAITING: self.waiting, TrialState.FAIL: self.failed}
        for t in sorted(trials, key=lambda t: t.number):
            key = trial_key(t)
            if key not in fingerprints or is_superseded(t):
                continue
            if t.state == TrialState.COMPLETE and t.user_attrs.get("fingerprint") == fingerprints[key]:
                self.completed[key] = t
            elif t.state in groups:
                groups[t.state][key] = t

    def todo(self, session_start: datetime) -> list[Point]:
        """Points to run now: not completed, running or queued, nor failed since ``session_start`` (a failure of
        this session is retried by the next run of the command, not by this one)."""
        skip = {*self.completed, *self.published, *self.running, *self.waiting}
        skip |= {k for k, t in self.failed.items() if t.datetime_complete and t.datetime_complete >= session_start}
        return [p for p in self.points if p.key not in skip]

    def counts(self) -> dict[str, int]:
        """``{"total", "done", "running", "failed"}`` over the points (a finished point counts as done only)."""
        keys, finished = {p.key for p in self.points}, {*self.completed, *self.published}
        failed = keys & self.failed.keys() - finished - self.running.keys() - self.waiting.keys()
        return {"total": len(keys), "done": len(keys & finished), "running": len(keys & self.running.keys() - finished),
                "failed": len(failed)}


def conflicting_trial(study: optuna.Study, trial_number: int, point: Point) -> FrozenTrial | None:
    """Another RUNNING trial on ``point``, or a COMPLETE one with its current overrides, if any."""
    state = GridState([t for t in study.get_trials(deepcopy=False) if t.number != trial_number], [point])
    return state.running.get(point.key) or state.completed.get(point.key)
