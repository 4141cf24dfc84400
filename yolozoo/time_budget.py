"""Time-budgeted training: ``trainer.max_time=10m`` fits the run's length and its learning-rate schedule to a budget.

The budget is the wall time of the whole of :func:`yolozoo.train.train`, from its call to the
written record: dataset generation and setup, training, every epoch's validation, the timing pass.
After ``skip`` warm-up steps the :class:`TimeBudget` callback times ``calibrate`` optimizer steps
(all in the first epoch), then chooses the total number of steps ``T`` (at most ``max_epochs``
epochs: a budget only shortens a run) so that the time of the steps still to go plus the
reserves below fits what is left, and

- stops training at step ``T`` with ``trainer.should_stop``, which makes Lightning validate
  at that step even in the middle of an epoch, so the final metrics are those of the final
  (EMA) weights;
- rebuilds the one-cycle schedule for ``T`` steps at the current step (:func:`refit_one_cycle`):
  from there on the learning rate is exactly that of a run planned for ``T`` steps, whose
  warm-up is the first ``warmup`` fraction of them and which ends on the schedule's last value;
- moves the EMA's first update to ``warmup * T``, as ``train()`` sets it for a run without budget.

Steps do not keep one speed: the EMA's updates begin after the warm-up, and on 2-core machines the
step time was seen to drift up by 15% over a 10-minute run. So the callback times the training
steps again in windows of ``every`` steps (default a tenth of ``T``, validations left out) and, when
a window's rate gives a ``T`` more than 0.5% away, fits the total and the schedule once more from that step
(with each validation's reserve at least what the validations so far took). The record's
``budget.refits`` lists them: step, rate and new ``T``.

What is reserved, in seconds of the budget: everything before the decision, as measured (data,
setup, the calibration steps); ``val_steps`` training steps' time for each validation still to
come, one per epoch the run enters (the final, possibly shortened, one included); ``end_steps``
steps' time for what follows training (the timing pass); and ``margin`` of the budget for what
the clock does not see (the process start-up before ``train()``, W&B's finish, timing noise).

The decision is stored in every checkpoint (written at epoch ends), so a resumed run keeps its
``T`` and schedule, and times no more: its clock started again. Given ``T``, a run is deterministic:
the decision step and the schedule before it do not depend on the clock. A budget used up at the
decision (no time left for a validation) fails with :class:`BudgetError`. One too short for the warm-up
(the new schedule's peak would lie before the decision step) or for one epoch still trains and
validates what it holds, inside the budget, with a warning: "any machine" includes slow ones.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Callable

import lightning as L
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from torch.optim.lr_scheduler import OneCycleLR

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class BudgetError(RuntimeError):
    """The time budget is used up before the run could plan its end."""


def parse_duration(text: str | float | int) -> float:
    """``"10m"`` -> 600.0 seconds; ``"90s"``, ``"1.5h"``, a bare number (seconds). Raises ValueError."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a duration like 10m, 90s or 1.5h: {text!r}")
    seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if not 0 < seconds < math.inf:
        raise ValueError(f"a duration must be > 0, got {text!r}")
    return seconds


def fit_total_steps(seconds: float, s_per_step: float, step: int, epoch: int, steps_per_epoch: int,
                    max_steps: int, val_steps: float) -> int:
    """The largest total ``T`` (``step <= T <= max_steps``) whose steps after ``step`` plus one validation
    (``val_steps`` steps' time) per epoch from ``epoch`` (0-based, not yet validated) to the one ``T`` ends in
    take at most ``seconds``; ``step`` (stop now) if no further step fits."""
    best = step
    for last in range(epoch, math.ceil(max_steps / steps_per_epoch)):
        affordable = math.floor(seconds / s_per_step - (last - epoch + 1) * val_steps)
        total = min(step + affordable, (last + 1) * steps_per_epoch, max_steps)
        if total > max(step, last * steps_per_epoch):  # ends inside epoch ``last``
            best = total
    return best


def refit_one_cycle(scheduler: OneCycleLR, total_steps: int, warmup: float) -> OneCycleLR:
    """``scheduler``'s cosine one-cycle schedule rebuilt for ``total_steps`` (warm-up: the first ``warmup``
    of them) at ``scheduler``'s current step: from there on the optimizer's learning rate is the one a
    schedule built for ``total_steps`` gives (its peak, initial and final rates are kept)."""
    groups = scheduler.optimizer.param_groups
    # last_epoch != -1: the groups' initial/max/min rates are kept, and the new scheduler steps once,
    # to scheduler.last_epoch, setting the learning rate of the step to come
    return OneCycleLR(scheduler.optimizer, max_lr=[g["max_lr"] for g in groups], total_steps=total_steps,
                      pct_start=float(warmup), cycle_momentum=scheduler.cycle_momentum,
                      last_epoch=scheduler.last_epoch - 1)


def now() -> float:
    """The budget's clock (tests replace it)."""
    return time.monotonic()


class TimeBudget(Callback):
    """Fits the total optimizer steps and the one-cycle schedule to ``max_time_s`` seconds (see the module doc).

    Args:
        max_time_s: the budget, from ``started``.
        started: the clock's value when the run began (the call of ``train()``).
        warmup: the schedule's warm-up fraction (``optim.warmup``).
        val_steps: one validation's reserve, in training steps' time.
        end_steps: the reserve for what follows training (the timing pass), in training steps' time.
        ema: the EMA callback whose first update follows ``warmup * T``, if any.
        label: the budget as written (``10m``), for the decision's line.
        skip, calibrate: the steps left out at the start, then the steps timed.
        every: the steps of each later timing window (default: a tenth of the planned total, at least
            ``calibrate``).
        margin: the budget's fraction kept free of plans.
        clock: seconds, monotonic (default :func:`now`).
    """

    def __init__(self, max_time_s: float, *, started: float, warmup: float, val_steps: float, end_steps: float,
                 ema: Callback | None = None, label: str | None = None, skip: int = 10, calibrate: int = 40,
                 every: int | None = None, margin: float = 0.05, clock: Callable[[], float] | None = None):
        self.max_time_s, self.started, self.warmup = max_time_s, started, warmup
        self.val_steps, self.end_steps, self.ema = val_steps, end_steps, ema
        self.label = label or f"{max_time_s:g}s"
        self.skip, self.calibrate, self.every, self.margin = skip, calibrate, every, margin
        self.clock = clock
        self.plan: dict | None = None  # the decision: see summary()
        self._t0: float | None = None
        self._window: list | None = None  # the timing window under way: [first step, its time, validation s inside]
        self._val_start: float | None = None
        self._val_s: list[float] = []

    def _time(self) -> float:
        return (self.clock or now)()

    # -- the decision, kept in checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"plan": self.plan}

    def load_state_dict(self, state_dict: dict) -> None:
        self.plan = state_dict.get("plan")

    @property
    def total_steps(self) -> int | None:
        return None if self.plan is None else self.plan["total_steps"]

    def summary(self) -> dict:
        """The record's ``budget``: the budget, the decision (``total_steps``, ``epochs`` = T / steps per epoch,
        ``calibrated_s_per_step``, ...) and the validations' measured seconds (this process's)."""
        return {"max_time": self.label, "max_time_s": self.max_time_s, **(self.plan or {}),
                "val_s_measured": [round(s, 2) for s in self._val_s]}

    # -- hooks ----------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._steps_per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        self._max_steps = self._steps_per_epoch * trainer.max_epochs
        if trainer.max_steps > 0:
            self._max_steps = min(self._max_steps, trainer.max_steps)
        if self.plan is not None:  # resumed: the stored decision holds (Lightning restored the schedule)
            self._set_ema_start()
            if trainer.global_step >= self.total_steps:
                trainer.should_stop = True
            return
        step, epoch_end = trainer.global_step, (trainer.current_epoch + 1) * self._steps_per_epoch
        # time whole steps of this epoch only: no validation inside, and the decision is in its checkpoint
        self._first = step + min(self.skip, max(epoch_end - step - 1, 0))
        self._last = min(self._first + self.calibrate, epoch_end)
        self._resumed = step > 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.plan is None and self._t0 is None and trainer.global_step >= self._first:
            self._t0 = self._time()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.plan is None and trainer.global_step >= self._last:
            self._decide(trainer)
        elif self._window is not None and trainer.global_step >= self._window[0] + self._every:
            self._refit(trainer)
        if self.plan is not None and trainer.global_step >= self.total_steps:
            trainer.should_stop = True  # Lightning validates this step, then ends the run

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_start = self._time()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None:
            self._val_s.append(self._time() - self._val_start)
            self._val_start = None
            if self._window is not None:
                self._window[2] += self._val_s[-1]

    # -- the decision ---------------------------------------------------------------------------------------
    def _timed(self, trainer: L.Trainer, t0: float, first: int) -> tuple[int, float, float, float]:
        """``(step, s/step since step first (timed from t0), seconds used, seconds left for steps and
        validations)``: rank 0's timings, so that every process of a multi-device run plans the same end."""
        step, t = trainer.global_step, self._time()
        s_per_step, used = trainer.strategy.broadcast((max(t - t0, 1e-9) / (step - first), t - self.started), src=0)
        return step, s_per_step, used, self.max_time_s * (1 - self.margin) - used - self.end_steps * s_per_step

    def _fit(self, trainer: L.Trainer, step: int, s_per_step: float, used: float, total: int) -> float:
        """Rebuild the one-cycle schedule for ``total`` steps at this step; the seconds the run is planned to take."""
        scheduler = _one_cycle_config(trainer)
        scheduler.scheduler = refit_one_cycle(scheduler.scheduler, total, self.warmup)
        validations = math.ceil(total / self._steps_per_epoch) - trainer.current_epoch
        return used + (total - step + validations * self.val_steps + self.end_steps) * s_per_step

    def _total(self, trainer: L.Trainer, step: int, s_per_step: float, left: float) -> int:
        # a validation's reserve: at least what each one so far took
        val_steps = max([self.val_steps, *(s / s_per_step for s in self._val_s)])
        return fit_total_steps(left, s_per_step, step, trainer.current_epoch, self._steps_per_epoch, self._max_steps,
                               val_steps)

    def _decide(self, trainer: L.Trainer) -> None:
        step, s_per_step, used, left = self._timed(trainer, self._t0, self._first)
        spe = self._steps_per_epoch
        total = self._total(trainer, step, s_per_step, left)
        if left < self.val_steps * s_per_step:
            raise BudgetError(
                f"trainer.max_time={self.label} is used up: {used:.0f} s by step {step} at {s_per_step:.3f} s/step, "
                f"leaving no time for a validation and the timing pass; raise trainer.max_time")
        planned = self._fit(trainer, step, s_per_step, used, total)
        self.plan = {"total_steps": total, "epochs": round(total / spe, 3), "steps_per_epoch": spe,
                     "calibrated_s_per_step": round(s_per_step, 5), "decided_at_step": step,
                     "used_s_at_decision": round(used, 1), "planned_s": round(planned, 1)}
        self._set_ema_start()
        self._every = self.every or max(self.calibrate, total // 10)
        self._window = [step, self._time(), 0.0]
        capped = " (max_epochs)" if total == self._max_steps else ""
        if trainer.is_global_zero:
            print(f"time budget {self.label}: {s_per_step:.3f} s/step -> {total} steps ({total / spe:.2f} epochs of "
                  f"{spe}){capped}; {used:.0f} s used, reserved: {self.val_steps * s_per_step:.1f} s per validation, "
                  f"{self.end_steps * s_per_step:.0f} s after training, {self.margin:.0%} margin", flush=True)
        if self.warmup * total < step and not self._resumed:
            warnings.warn(f"trainer.max_time={self.label} holds {total} steps: their warm-up (optim.warmup="
                          f"{self.warmup}) would end before step {step}, where the budget was decided, so the "
                          "learning rate jumps to its decay now", stacklevel=2)
        if total < spe:
            warnings.warn(f"trainer.max_time={self.label} holds {total} of the {spe} steps of one epoch: the run "
                          "trains and validates that part of an epoch only", stacklevel=2)

    def _refit(self, trainer: L.Trainer) -> None:
        """A timing window ended: if its step rate gives another total, fit the total and the schedule again from
        this step (and the EMA's start, if it is still to come)."""
        first, t0, val_s = self._window
        step, s_per_step, used, left = self._timed(trainer, t0 + val_s, first)
        self._window = [step, self._time(), 0.0]
        total = max(self._total(trainer, step, s_per_step, left), step + 1)
        if abs(total - self.total_steps) <= 0.005 * self.total_steps:  # not worth a jolt of the learning rate
            return
        spe = self._steps_per_epoch
        planned = self._fit(trainer, step, s_per_step, used, total)
        self.plan.update({"total_steps": total, "epochs": round(total / spe, 3), "planned_s": round(planned, 1)})
        self.plan.setdefault("refits", []).append({"at_step": step, "s_per_step": round(s_per_step, 5),
                                                   "total_steps": total})
        if self.ema is not None and step < self.ema.update_starting_at_step:
            self._set_ema_start()
        if trainer.is_global_zero:
            print(f"time budget {self.label}: re-timed at step {step}: {s_per_step:.3f} s/step -> {total} steps "
                  f"({total / spe:.2f} epochs)", flush=True)

    def _set_ema_start(self) -> None:
        if self.ema is not None:
            self.ema.update_starting_at_step = int(self.warmup * self.total_steps)


def _one_cycle_config(trainer: L.Trainer):
    """The trainer's scheduler config whose scheduler is a OneCycleLR (the one the budget refits)."""
    for config in trainer.lr_scheduler_configs:
        if isinstance(config.scheduler, OneCycleLR):
            return config
    raise BudgetError("trainer.max_time needs the module's one-cycle learning-rate schedule (OneCycleLR)")


def build_time_budget(cfg: DictConfig, started: float, val_images: int, ema: Callback | None) -> TimeBudget | None:
    """The :class:`TimeBudget` of ``cfg.trainer.max_time`` (None without one); ``val_images``: the validation set's
    size."""
    t = cfg.trainer
    if t.max_time is None:
        return None
    # Measured on 2 CPU cores (default run, idle or loaded): a validation batch (forward, NMS, its share of the
    # COCO evaluation) takes about half a training step's time, and the timing pass 0.65-0.9 of one per call
    # pair (batch 1 + batch 32; 5 warm-up pairs). Reserved: 0.75 and 1, over the full validation set.
    return TimeBudget(parse_duration(t.max_time), started=started, warmup=cfg.optim.warmup,
                      val_steps=0.75 * math.ceil(val_images / t.batch_size), end_steps=cfg.eval.latency_batches + 5,
                      ema=ema, label=str(t.max_time))


def stored_plan(checkpoint: dict) -> dict | None:
    """The budget decision a Lightning checkpoint holds (None: the run had no budget, or none decided yet)."""
    state = checkpoint.get("callbacks", {}).get(TimeBudget.__qualname__) or {}
    return state.get("plan")


__all__ = ["BudgetError", "TimeBudget", "build_time_budget", "fit_total_steps", "parse_duration", "refit_one_cycle",
           "stored_plan"]
