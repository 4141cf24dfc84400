"""Where a training step's time goes: the split by part, on this machine's CPU.

    python bench/perf_profile.py [steps=30] [key=value ...]     # default config unless overridden

Times a hand-written copy of the training step, part by part, on batches already in memory:
backbone, neck and head forward; assignment; loss; backward split at the tensors between head,
neck and backbone (gradient hooks mark when each part's backward has finished); optimizer; the
EMA update (:class:`yolozoo.ema.FusedEMA`'s, which training uses; Lightning's
stock per-tensor update is timed too, outside the step's sum); the assignment statistics. Then it
times steps of the real run (``train()`` with W&B offline, the loader in use, Lightning's loop and
logging), split at Lightning's hooks in the same steps: the training step (forward, assignment, loss,
logging), the backward pass, the optimizer step with clipping and the callbacks' batch end (the EMA),
and the time between steps (data, loop). Two passes, so the machine's speed may differ between the two
tables; within each, the rows come from the same steps. Medians over ``steps`` steps after 3 warm-up
steps. The parts' table sets their times against their arithmetic: each part's floating-point operations in
one step (torch's ``FlopCounterMode``: convolutions and matrix products, counted at the same marks) and the rate
it attains, against the rate of a float32 matrix product on the same threads, this machine's practical ceiling.
Writes the tables to reports/perf.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import torch
from lightning.pytorch.callbacks import Callback
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from yolozoo.assigners.stats import assignment_stats
from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError, load_config
from yolozoo.ema import fused_ema_update, tensor_lists, update_from_lists
from yolozoo.lit import make_optimizer
from yolozoo.losses import weighted_sum
from yolozoo.perf_report import describe_model, update_section
from yolozoo.train import build_module, ready_datamodule, train

OPTIONS = [KeyHelp("steps", 30, "steps timed (after 3 warm-up steps), in each of the two passes")]
PARTS = ["forward: backbone", "forward: neck", "forward: head, priors, decode", "assignment", "loss",
         "backward: loss and head", "backward: neck", "backward: backbone", "optimizer step", "EMA update",
         "assignment statistics"]
STOCK_EMA = "EMA update as Lightning's EMAWeightAveraging makes it (not in the step)"


def _mark_last_grad(tensors: list[torch.Tensor], mark, marks: dict, key: str) -> None:
    """Set ``marks[key] = mark()`` when the last of ``tensors`` has received its gradient."""
    pending = {"n": len(tensors)}

    def hook(grad):
        pending["n"] -= 1
        if pending["n"] == 0:
            marks[key] = mark()

    for t in tensors:
        t.register_hook(hook)


def model_step(module, batch: dict, mark) -> tuple[list[float], dict, torch.Tensor]:
    """One training step's forward, assignment, loss and backward by part: ``mark()`` is read at the start and at
    the end of each of the first eight :data:`PARTS` (the backward split where the gradients of the neck's and the
    backbone's maps are complete). Returns the readings, the assignment and the priors."""
    model = module.model
    t = [mark()]
    x = module.images(batch)
    x = (x.float() - model.backbone.mean) / model.backbone.std
    feats_b = model.backbone(x)
    t.append(mark())
    feats = model.neck(feats_b)
    t.append(mark())
    cls_logits, box_raw = model.head(feats)
    priors = model.head.priors([tuple(f.shape[-2:]) for f in feats], model.strides, device=x.device)
    boxes = model.head.decode(box_raw, priors)
    t.append(mark())
    assign = module.assigner(cls_logits.detach().sigmoid(), boxes.detach(), priors, batch["gt_labels"],
                             batch["gt_boxes"], batch["gt_mask"])
    t.append(mark())
    total = weighted_sum(module.loss(cls_logits, boxes, assign), module.loss_weights)
    t.append(mark())
    marks: dict[str, float] = {}
    _mark_last_grad(list(feats), mark, marks, "head")
    _mark_last_grad([f for f in feats_b if f.requires_grad], mark, marks, "neck")
    total.backward()
    return [*t, marks["head"], marks["neck"], mark()], assign, priors


def profile_parts(module, batches: list[dict], warmup: int = 3) -> dict[str, float]:
    """Median seconds per part of the training step over ``batches`` (the first ``warmup`` untimed)."""
    model = module.model
    opt = make_optimizer(model, module.optim)  # as training builds it
    ema = AveragedModel(model, multi_avg_fn=fused_ema_update(0.995), use_buffers=True)
    ema.update_parameters(model)  # the first update copies; FusedEMA then averages on lists gathered once
    ema_lists = tensor_lists(ema.module, model)
    stock_ema = AveragedModel(model, avg_fn=get_ema_avg_fn(0.995), use_buffers=True)
    model.train()
    times: dict[str, list[float]] = {p: [] for p in [*PARTS, STOCK_EMA]}
    for i, batch in enumerate(batches):
        t, assign, priors = model_step(module, batch, time.perf_counter)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t.append(time.perf_counter())
        update_from_lists(ema, ema_lists)
        t.append(time.perf_counter())
        assignment_stats(assign, batch["gt_mask"], priors)
        t.append(time.perf_counter())
        stock_ema.update_parameters(model)
        if i >= warmup:
            times[STOCK_EMA].append(time.perf_counter() - t[-1])
            for part, a, b in zip(PARTS, t, t[1:]):
                times[part].append(b - a)
    return {p: statistics.median(v) for p, v in times.items()}


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """A convolution's backward: the forward's operations once for each gradient it computes. Torch's own formula
    (2.14) counts a grouped convolution's weight gradient as if it were not grouped: a depthwise 3x3 conv of 144
    channels 144 times over."""
    return conv_flop_count(x_shape, w_shape, grad_out_shape, transposed) * (bool(output_mask[0]) + bool(output_mask[1]))


def step_flops(module, batch: dict) -> dict[str, int]:
    """Floating-point operations of each of :data:`PARTS` in one training step (forward and backward; the parts
    after the backward count none), as torch's ``FlopCounterMode`` counts them (convolutions and matrix products),
    a convolution's backward by :func:`conv_backward_flops`."""
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops}
                         ) as counter:
        marks, _, _ = model_step(module, batch, counter.get_total_flops)
    module.model.zero_grad(set_to_none=True)
    return dict.fromkeys(PARTS, 0) | {part: b - a for part, a, b in zip(PARTS, marks, marks[1:])}


def matmul_rate(n: int = 1024, seconds: float = 1.0, tries: int = 3) -> float:
    """Floating-point operations per second of an ``n`` x ``n`` float32 matrix product on torch's threads: the best
    of ``tries`` runs of ``seconds`` each (a ceiling; the machine's speed moves by a fifth between runs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(tries):
        reps, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / elapsed)
    return best


def parts_rows(parts: dict[str, float], flops: dict[str, int], ceiling: float, batch_size: int) -> list[str]:
    """Rows of the parts table: seconds and operations per part, the rate where a part computes, then the sum."""
    total = sum(parts.values())

    def rate(f: float, s: float) -> str:
        return f"{f / s / 1e9:.0f} | {100 * f / s / ceiling:.0f}%" if f else " | "

    rows = [f"| {p} | {1000 * s:.1f} | {100 * s / total:.0f}% | {flops[p] / 1e9:.2f} | {rate(flops[p], s)} |"
            for p, s in parts.items()]
    f = sum(flops.values())
    return [*rows, f"| **sum of the parts** | **{1000 * total:.1f}** | {batch_size / total:.0f} images/s | "
                   f"{f / 1e9:.2f} | {rate(f, total)} |"]


REAL = ["training step: forward, assignment, loss, logging", "backward",
        "optimizer step, clipping, callbacks' batch end", "between steps: data, Lightning's loop"]


class StepClock(Callback):
    """Times at Lightning's hooks in each training step of a real run (listed after the EMA callback, so its batch
    end follows the EMA's update). ``split()``: median seconds per :data:`REAL` segment, and of the whole step."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def _stamp(self, key: str) -> None:
        self.steps[-1][key] = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps.append({})
        self._stamp("start")

    def on_before_backward(self, trainer, pl_module, loss):
        self._stamp("forward")

    def on_after_backward(self, trainer, pl_module):
        self._stamp("backward")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._stamp("end")

    def split(self, warmup: int = 3) -> tuple[dict[str, float], float]:
        pairs = list(zip(self.steps, self.steps[1:]))[warmup:]
        keys = ["start", "forward", "backward", "end"]
        segments = {name: statistics.median(s[b] - s[a] for s, _ in pairs) for name, a, b in zip(REAL, keys, keys[1:])}
        segments[REAL[-1]] = statistics.median(n["start"] - s["end"] for s, n in pairs)
        return segments, statistics.median(n["start"] - s["start"] for s, n in pairs)


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    try:
        own, overrides = split_options(argv, OPTIONS)
        rest = [f"{k}={v}" for k, v in overrides.items()]
        cfg = load_config(rest)
    except ConfigError as e:
        return user_error(e)
    if not str(own["steps"]).isdigit() or int(own["steps"]) < 1:
        return user_error(f"steps: expected a whole number >= 1, got {own['steps']!r}")
    steps = int(own["steps"])
    torch.manual_seed(cfg.seed)
    dm = ready_datamodule(cfg)
    batches = [b for b, _ in zip(iter(dm.train_dataloader()), range(steps + 3))]
    module = build_module(cfg, len(dm.classes))
    parts = profile_parts(module, batches)
    stock_ema = parts.pop(STOCK_EMA)
    flops, ceiling = step_flops(module, batches[0]), matmul_rate()

    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="yolozoo-profile-") as tmp:
        run = load_config([*rest, f"out_dir={tmp}/runs", f"results_dir={tmp}/results", "wandb.mode=offline",
                           "trainer.max_epochs=1", f"trainer.limit_train_batches={steps + 4}",
                           "trainer.limit_val_batches=1", "eval.latency_batches=1", "trainer.max_time=null",
                           "trainer.enable_progress_bar=false"])
        train(run, callbacks=[clock])
    real, whole = clock.split()
    bs = cfg.trainer.batch_size
    step_rate = sum(flops.values()) / sum(parts.values())
    lines = [f"Config: `{' '.join(rest) or 'default'}` ({describe_model(cfg.model)}, strides "
             f"{list(cfg.model.strides)}, {cfg.data.img_size} px, batch {bs}, {dm.num_workers} loader workers, "
             f"{torch.get_num_threads()} torch threads). Median of {steps} steps.", "",
             "The training step by part (a copy of it, on batches in memory), with each part's floating-point "
             "operations (torch's `FlopCounterMode`: convolutions and matrix products) and the rate it attains "
             f"against a float32 1024 x 1024 matrix product's on the same threads, {ceiling / 1e9:.0f} GFLOP/s here:",
             "", "| part | ms/step | share | GFLOP/step | GFLOP/s | of the matmul rate |", "|---|---|---|---|---|---|",
             *parts_rows(parts, flops, ceiling, bs),
             f"| {STOCK_EMA} | {1000 * stock_ema:.1f} | | | | |", "",
             f"The same arithmetic in half the step's time would run at {2 * step_rate / 1e9:.0f} GFLOP/s, "
             f"{200 * step_rate / ceiling:.0f}% of the matmul rate.", "",
             "Steps of the real run (`train()`), split at Lightning's hooks:", "",
             "| segment | ms/step | share |", "|---|---|---|"]
    lines += [f"| {p} | {1000 * s:.1f} | {100 * s / whole:.0f}% |" for p, s in real.items()]
    lines.append(f"| **whole step of `train()`** | **{1000 * whole:.1f}** | {bs / whole:.0f} images/s |")
    body = "\n".join(lines)
    print(body)
    update_section("Training step profile", body, "python bench/perf_profile.py " + " ".join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
