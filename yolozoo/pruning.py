"""The Lightning callback that feeds a trial's validation metric to Optuna and stops hopeless trials.

After every validation it reports ``val/<metric>`` (epoch = step) to the trial and asks the
study's pruner whether to stop. The decision is made on global rank 0 only (the only rank
that logs ``val/`` metrics, see :class:`~yolozoo.lit.DetectorModule`) and broadcast to all
ranks, so under DDP every rank stops after the same epoch: raising ``optuna.TrialPruned``
inside ``fit`` would stop rank 0 alone and leave the others waiting in a collective.
A pruned run stops *cleanly* (``trainer.should_stop``): its record, checkpoint and W&B run
are finished like any other, and the search's objective marks the trial PRUNED afterwards,
reading the decision from the trial's ``pruned`` user attribute.

In a multi-device trial the callback lives in the trial's own process (see
:mod:`yolozoo.sweep.point`) and reaches the trial through the storage
(:func:`yolozoo.search.study.pruning_from_storage`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)
PRUNED_ATTR = "pruned"  # trial user attr: {"epoch", "value", "metric", "pruner"} once the pruner stopped it


def pruned_reason(info: dict[str, Any]) -> str:
    """``pruned by the median pruner after epoch 1: val/mAP 0.0012``."""
    value = info.get("value")
    text = "nan" if value is None else f"{value:.4g}"
    return f"pruned by the {info.get('pruner')} pruner after epoch {info.get('epoch')}: val/{info.get('metric')} {text}"


class TrialPruning(Callback):
    """Report ``val/<metric>`` to an Optuna trial after each validation; stop training when the pruner says so.

    Args:
        metric: validation metric name (``mAP``, ``mAP50``, ...; logged as ``val/<metric>``).
        trial: the running trial, or a zero-argument callable returning it (opened lazily on rank 0).
        pruner: the pruner's name, for the reason text.
    """

    def __init__(self, metric: str, trial: optuna.Trial | Any, pruner: str = "median"):
        self.metric, self.pruner = metric, pruner
        self._trial, self._open = (trial, None) if isinstance(trial, optuna.Trial) else (None, trial)
        self.pruned: dict[str, Any] | None = None  # the decision, on every rank, once made

    @property
    def trial(self) -> optuna.Trial:
        if self._trial is None:
            self._trial = self._open()
        return self._trial

    def _decide(self, trainer) -> dict[str, Any] | None:
        """Rank 0: report this epoch's value; return the prune decision (None: go on)."""
        value = trainer.callback_metrics.get(f"val/{self.metric}")
        if value is None:
            return None  # NaN metrics are not logged (e.g. APl with no large objects): nothing to compare
        value, epoch = float(value), trainer.current_epoch + 1
        if not math.isfinite(value):
            return None
        try:
            self.trial.report(value, step=epoch)
            if not self.trial.should_prune():
                return None
            info = {"epoch": epoch, "value": value, "metric": self.metric, "pruner": self.pruner}
            self.trial.set_user_attr(PRUNED_ATTR, info)
            return info
        except Exception as e:  # the store is unreachable: training goes on (every rank must reach the broadcast)
            log.warning("could not report epoch %d to the Optuna trial (%s: %s); not pruning", epoch,
                        type(e).__name__, e)
            return None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.pruned is not None:
            return
        decision = self._decide(trainer) if trainer.is_global_zero else None
        decision = trainer.strategy.broadcast(decision, src=0)
        if decision is not None:
            self.pruned = decision
            trainer.should_stop = True
            if trainer.is_global_zero:
                print(f"trial {self.trial.number}: {pruned_reason(decision)}; stopping", flush=True)
