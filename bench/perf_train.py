"""Data loader vs training throughput of a config, and its training step against a baseline's, in one sitting.

    python bench/perf_train.py [steps=30] [baseline=dataclass] [key=value ...]   # default config unless overridden

Prints images/s the train DataLoader delivers (with the config's workers, no training) and images/s a
training step consumes (forward + assignment + loss + backward + optimizer step on batches already in
memory). The same step of a ``baseline`` config is timed in alternating rounds on the same machine, so
the two compare within one sitting: ``baseline=dataclass`` (default) is the config with the default
preset's keys at their dataclass defaults (over the command line's), lcnet_075 from scratch at batch 16:
the default run when the time-to-accuracy issue (#17) was filed; ``baseline=eager``: the same config without
``trainer.compile`` (with ``trainer.compile=MODE``: what compiling buys, and the compilation's time);
``baseline=fp32``: the same config at ``trainer.precision=32-true`` (with ``trainer.precision=bf16-mixed``: what
bfloat16 autocast buys, or costs, on this CPU); ``baseline=none`` times the config alone. Medians of ``steps``
steps per config after one warm-up step (the one that compiles). Writes the table to reports/perf.md
(``baseline=eager`` and ``fp32``: their own sections).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError, default_run_reset, format_overrides, load_config
from yolozoo.lit import make_optimizer
from yolozoo.losses import weighted_sum
from yolozoo.perf_report import describe_model, update_section
from yolozoo.train import build_module, ready_datamodule

OPTIONS = [KeyHelp("steps", 30, "training steps timed per config (3 alternating rounds)"),
           KeyHelp("baseline", "dataclass", "the config timed against: dataclass (#17's default run), eager (the "
                                            "config without trainer.compile), fp32 (at trainer.precision=32-true) "
                                            "or none")]
MIXED = ("bf16-mixed", "16-mixed")  # Lightning autocasts these to bfloat16 on a CPU
ROUNDS = 3


def loader_throughput(loader, num_batches: int) -> float:
    it = iter(loader)
    next(it)  # workers started, first batch out
    t0, n = time.perf_counter(), 0
    for _ in range(num_batches):
        n += next(it)["images"].shape[0]
    return n / (time.perf_counter() - t0)


class Stepper:
    """A config's module, optimizer and batches in memory; ``run(n)`` times ``n`` training steps."""

    def __init__(self, cfg, steps: int):
        torch.manual_seed(cfg.seed)
        self.cfg, self.dm = cfg, ready_datamodule(cfg)
        self.bf16 = str(cfg.trainer.precision) in MIXED  # trainer.precision=bf16-mixed: autocast, as Lightning on a CPU
        self.batches = [b for b, _ in zip(iter(self.dm.train_dataloader()), range(min(steps, 16)))]
        self.module = build_module(cfg, len(self.dm.classes))
        self.opt = make_optimizer(self.module.model, self.module.optim)  # as training builds it
        self.module.train()
        self.times: list[float] = []
        self.done = 0
        self.step(self.batches[0])  # warm-up

    def step(self, batch) -> None:
        module = self.module
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):  # the forward and loss, as Lightning
            out = module.train_model()(module.images(batch))  # trainer.compile: the compiled model, as training runs it
            assign = module.assigner(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors,
                                     batch["gt_labels"], batch["gt_boxes"], batch["gt_mask"])
            loss = weighted_sum(module.loss(out.cls_logits, out.boxes, assign), module.loss_weights)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def run(self, n: int) -> None:
        for _ in range(n):
            batch = self.batches[self.done % len(self.batches)]
            t0 = time.perf_counter()
            self.step(batch)
            self.times.append(time.perf_counter() - t0)
            self.done += 1

    @property
    def images_per_s(self) -> float:
        return self.cfg.trainer.batch_size / statistics.median(self.times)

    def describe(self) -> str:
        return f"{describe_model(self.cfg.model)}, batch {self.cfg.trainer.batch_size}"


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    try:
        own, overrides = split_options(argv, OPTIONS)
        rest = [f"{k}={v}" for k, v in overrides.items()]
        cfg = load_config(rest)
        baseline = own["baseline"]
        if baseline not in ("dataclass", "eager", "fp32", "none"):
            raise ConfigError(f"baseline: expected dataclass, eager, fp32 or none, got {baseline!r}")
        if baseline == "eager" and cfg.trainer.compile is None:
            raise ConfigError("baseline=eager compares trainer.compile=MODE with eager steps: set trainer.compile")
        if baseline == "fp32" and str(cfg.trainer.precision) not in MIXED:
            raise ConfigError("baseline=fp32 compares bfloat16 autocast with float32 steps: set "
                              "trainer.precision=bf16-mixed")
        if str(cfg.trainer.precision) not in (*MIXED, "32-true", "32"):
            raise ConfigError(f"trainer.precision={cfg.trainer.precision}: this script times 32-true and "
                              f"bf16-mixed steps")
        # dataclass: the default preset's keys at their dataclass defaults win over the command line's
        reset = {"dataclass": default_run_reset(), "eager": {"trainer.compile": None},
                 "fp32": {"trainer.precision": "32-true"}}.get(baseline)
        base_cfg = None if reset is None else load_config({**overrides, **format_overrides(reset)})
    except ConfigError as e:
        return user_error(e)
    if not str(own["steps"]).isdigit() or int(own["steps"]) < ROUNDS:
        return user_error(f"steps: expected a whole number >= {ROUNDS}, got {own['steps']!r}")
    steps = int(own["steps"])
    t0 = time.perf_counter()
    current = Stepper(cfg, steps)  # its warm-up step compiles (trainer.compile)
    first_s = time.perf_counter() - t0
    loader = current.dm.train_dataloader()
    load_ips = loader_throughput(loader, min(30, len(loader) - 1))
    steppers = [current] if base_cfg is None else [current, Stepper(base_cfg, steps)]
    for r in range(ROUNDS):  # alternate, so a drift of the machine's speed falls on both
        for s in steppers:
            s.run(steps // ROUNDS + (r < steps % ROUNDS))
    lines = [f"Config: `{' '.join(rest) or 'default'}` ({current.describe()}, {cfg.data.img_size} px, "
             f"{current.dm.num_workers} loader workers, {torch.get_num_threads()} torch threads). Training steps: "
             f"medians of {steps} per config, in {ROUNDS} alternating rounds.", "",
             "| what | images/s |", "|---|---|", f"| data loader delivers | {load_ips:.0f} |",
             f"| training consumes | {current.images_per_s:.0f} |",
             f"| ratio (target >= 3) | {load_ips / current.images_per_s:.1f}x |"]
    section = "Loader vs training throughput"
    if baseline == "dataclass":
        base = steppers[1]
        speedup = current.images_per_s / base.images_per_s
        lines += [f"| baseline training consumes: {base.describe()} (the dataclass defaults) | "
                  f"{base.images_per_s:.0f} |",
                  f"| training images/s against the baseline (target >= 2x) | {speedup:.2f}x |"]
    elif baseline == "fp32":
        section = "bfloat16 autocast of the training step (CPU)"
        lines += [f"| the same steps in float32 (trainer.precision=32-true) | {steppers[1].images_per_s:.0f} |",
                  f"| bfloat16 autocast against float32 | {current.images_per_s / steppers[1].images_per_s:.2f}x |"]
    elif baseline == "eager":
        section = "torch.compile of the training step (CPU)"
        lines += [f"| the same steps eager (no trainer.compile) | {steppers[1].images_per_s:.0f} |",
                  f"| compiled against eager | {current.images_per_s / steppers[1].images_per_s:.2f}x |",
                  f"| data, model and the first step (its compilation) | {first_s:.0f} s |"]
    body = "\n".join(lines)
    print(body)
    update_section(section, body, "python bench/perf_train.py " + " ".join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
