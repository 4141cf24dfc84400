"""The weights' exponential moving average that validation and the final model use."""

from __future__ import annotations

import itertools

import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn


def fused_ema_update(decay: float):
    """An ``AveragedModel`` ``multi_avg_fn``: PyTorch's ``get_ema_multi_avg_fn`` for float tensors (one
    ``torch._foreach_lerp_``), and one ``torch._foreach_copy_`` for the integer buffers (BatchNorm's
    ``num_batches_tracked``), which PyTorch's version averages one by one in Python: 4.4 against 5.3 ms per
    update for the default run's model (57 BatchNorms; 2-core AMD EPYC, 2026-11-26). An average of a
    counter, cast back to an integer, stays where it started; the copy follows the model's count."""
    lerp = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], n_averaged) -> None:
        if torch.is_floating_point(ema[0]) or torch.is_complex(ema[0]):
            lerp(ema, current, n_averaged)
        else:
            torch._foreach_copy_(ema, current)

    return update


class FusedEMA(EMAWeightAveraging):
    """Lightning's :class:`EMAWeightAveraging`, with the update fused over all tensors.

    The stock callback averages with ``get_ema_avg_fn``: a Python loop of several small kernels per
    parameter and buffer. This one passes :func:`fused_ema_update`: one ``torch._foreach_lerp_`` per
    device and dtype. The average is the same up to float rounding (``a + (1 - d) (b - a)`` instead of
    ``d a + (1 - d) b``); ``tests/test_ema.py`` checks both agree. Measured in ``reports/perf.md``: the
    stock update took about a fifth of the VOC preset's step on an H100.

    Args:
        decay: weight of the running average per update, e.g. 0.995.
        update_starting_at_step: the first optimizer step that updates it (earlier ones are skipped);
            :mod:`yolozoo.time_budget` may move it once it knows the run's length.
    """

    def __init__(self, decay: float, update_starting_at_step: int | None = None):
        WeightAveraging.__init__(self, multi_avg_fn=fused_ema_update(decay))  # not the parent's avg_fn
        self.update_every_n_steps, self.update_starting_at_epoch = 1, None
        self.update_starting_at_step = update_starting_at_step
        self._lists: list[tuple[list[torch.Tensor], list[torch.Tensor]]] | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._lists = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        """Lightning's update, on the tensor lists gathered at the first one: ``AveragedModel.update_parameters``
        gathers, detaches and groups every parameter and buffer in Python at each update, 3.7 ms per step for the
        default run's model against 0.35 ms for the same ``torch._foreach_lerp_`` on lists gathered once (2-core
        AMD EPYC, 2026-11-26). Frozen parameters, equal to their average from the first update on, are left out."""
        average = self._average_model
        if trainer.global_step <= self._latest_update_step or not self.should_update(step_idx=trainer.global_step - 1):
            return
        if self._lists is None:  # (not average.n_averaged == 0: reading it back waits for the device)
            average.update_parameters(pl_module)  # the first update copies the weights
            self._lists = tensor_lists(average.module, pl_module)
        else:
            update_from_lists(average, self._lists)
        self._latest_update_step = trainer.global_step


def update_from_lists(average, lists: list[tuple[list, list]]) -> None:
    """One update of ``AveragedModel`` ``average`` (its ``multi_avg_fn``) on :func:`tensor_lists`' pairs."""
    for ema, current in lists:
        average.multi_avg_fn(ema, current, average.n_averaged)
    average.n_averaged += 1


def tensor_lists(average: torch.nn.Module, model: torch.nn.Module) -> list[tuple[list, list]] | None:
    """``average``'s and ``model``'s parameters and buffers that can change, paired and grouped by dtype (what
    one ``multi_avg_fn`` call takes); ``None`` where a pair's devices differ (the stock update moves tensors)."""
    groups: dict[torch.dtype, tuple[list, list]] = {}
    for a, m in zip(itertools.chain(average.parameters(), average.buffers()),
                    itertools.chain(model.parameters(), model.buffers()), strict=True):
        if a.device != m.device:
            return None
        if not (isinstance(m, torch.nn.Parameter) and not m.requires_grad):
            ema, current = groups.setdefault(a.dtype, ([], []))
            ema.append(a.detach())
            current.append(m.detach())
    return list(groups.values())


__all__ = ["FusedEMA", "fused_ema_update", "tensor_lists", "update_from_lists"]
