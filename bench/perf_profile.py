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
steps. Writes the tables to reports/perf.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import torch
from lightning.pytorch.callbacks import Callback
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

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


def _last_grad_time(tensors: list[torch.Tensor], stamps: dict, key: str) -> None:
    """Record in ``stamps[key]`` when the last of ``tensors`` has received its gradient."""
    pending = {"n": len(tensors)}

    def hook(grad):
        pending["n"] -= 1
        if pending["n"] == 0:
            stamps[key] = time.perf_counter()

    for t in tensors:
        t.register_hook(hook)


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
        t = [time.perf_counter()]
        x = module.images(batch)
        x = (x.float() - model.backbone.mean) / model.backbone.std
        feats_b = model.backbone(x)
        t.append(time.perf_counter())
        feats = model.neck(feats_b)
        t.append(time.perf_counter())
        cls_logits, box_raw = model.head(feats)
        priors = model.head.priors([tuple(f.shape[-2:]) for f in feats], model.strides, device=x.device)
        boxes = model.head.decode(box_raw, priors)
        t.append(time.perf_counter())
        assign = module.assigner(cls_logits.detach().sigmoid(), boxes.detach(), priors, batch["gt_labels"],
                                 batch["gt_boxes"], batch["gt_mask"])
        t.append(time.perf_counter())
        total = weighted_sum(module.loss(cls_logits, boxes, assign), module.loss_weights)
        t.append(time.perf_counter())
        stamps: dict[str, float] = {}
        _last_grad_time(list(feats), stamps, "head")
        _last_grad_time([f for f in feats_b if f.requires_grad], stamps, "neck")
        total.backward()
        end = time.perf_counter()
        t += [stamps["head"], stamps["neck"], end]
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

    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="yolozoo-profile-") as tmp:
        run = load_config([*rest, f"out_dir={tmp}/runs", f"results_dir={tmp}/results", "wandb.mode=offline",
                           "trainer.max_epochs=1", f"trainer.limit_train_batches={steps + 4}",
                           "trainer.limit_val_batches=1", "eval.latency_batches=1", "trainer.max_time=null",
                           "trainer.enable_progress_bar=false"])
        train(run, callbacks=[clock])
    real, whole = clock.split()
    total = sum(parts.values())
    bs = cfg.trainer.batch_size
    lines = [f"Config: `{' '.join(rest) or 'default'}` ({describe_model(cfg.model)}, strides "
             f"{list(cfg.model.strides)}, {cfg.data.img_size} px, batch {bs}, {dm.num_workers} loader workers, "
             f"{torch.get_num_threads()} torch threads). Median of {steps} steps.", "",
             "The training step by part (a copy of it, on batches in memory):", "",
             "| part | ms/step | share |", "|---|---|---|"]
    lines += [f"| {p} | {1000 * s:.1f} | {100 * s / total:.0f}% |" for p, s in parts.items()]
    lines += [f"| **sum of the parts** | **{1000 * total:.1f}** | {bs / total:.0f} images/s |",
              f"| {STOCK_EMA} | {1000 * stock_ema:.1f} | |", "",
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
