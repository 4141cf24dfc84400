"""GPU training throughput and utilisation of the VOC-shaped preset, on synthetic digits scenes.

    python bench/perf_gpu.py [steps=60] [warmup=15] [scenes=3840] [key=value ...]

Trains ``preset=voc`` (ResNet-18 YOLO, batch 64, SGD, EMA) from scratch on digits scenes rendered
at 416 px, with 416 and 640 px inputs, for ``steps`` optimizer steps per variant: AMP on and off
(16-mixed, bf16-mixed, 32-true), NCHW vs channels_last, loader workers, decoded images cached in
RAM (``data.cache``) and colour jitter on the GPU (``data.jitter_on=device``); as the ceiling a faster
loader could reach, one collated batch fed again at every step ("no loader"); the weights' EMA as
training does it (:class:`~yolozoo.ema.FusedEMA`), as Lightning's ``EMAWeightAveraging`` ("stock EMA"),
and none; the model compiled (``trainer.compile``: ``default``, and ``reduce-overhead``, which replays the
forward and backward as CUDA graphs).
Other ``key=value`` overrides go to every variant's config; ``only=`` picks variants by name.

- images/s: the steps after ``warmup``, the device synchronised at both ends of the window;
- GPU utilisation: nvidia-smi's ``utilization.gpu``, sampled every 100 ms over the same window;
- loader wait: the share of the window spent between one step's end and the next one's start
  (fetching the batch, plus Lightning's own per-step work);
- syncs/step: the operations that made the host wait for the GPU in one step after the window
  (``torch.cuda.set_sync_debug_mode``); each one stops the host from queueing work ahead of the GPU.
  The script prints where they are.

Prints a table and writes it to reports/perf.md with the GPU model. Needs a CUDA GPU.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError, load_config
from yolozoo.ema import FusedEMA
from yolozoo.perf_report import update_section
from yolozoo.train import build_datamodule, build_module

OPTIONS = [KeyHelp("steps", 60, "optimizer steps per variant"),
           KeyHelp("warmup", 15, "steps before the timed window"),
           KeyHelp("scenes", 3840, "digits scenes rendered (at 416 px) for all variants"),
           KeyHelp("only", "", "run only the variants named by one of these |-separated texts (a variant's whole "
                               "name, else every variant whose name contains the text)")]
RENDER_SIZE = 416  # the scenes are rendered once at this size; 640 px variants upscale them in the loader

FP16, BF16, FP32 = "trainer.precision=16-mixed", "trainer.precision=bf16-mixed", "trainer.precision=32-true"
FAST = ["data.cache=true", "data.jitter_on=device"]  # decoded images in RAM, colour jitter on the GPU
GRAPHS = "trainer.compile=reduce-overhead"  # torch.compile, forward and backward replayed as CUDA graphs
VARIANTS = [  # name, config overrides
    ("AMP fp16, channels_last, 8 workers", [FP16]),
    ("AMP fp16, NCHW, 8 workers", [FP16, "trainer.channels_last=false"]),
    ("fp32, channels_last, 8 workers", [FP32]),
    ("AMP fp16, channels_last, 4 workers", [FP16, "data.num_workers=4"]),
    ("AMP fp16, channels_last, 14 workers", [FP16, "data.num_workers=14"]),
    ("AMP fp16, 8 workers, cache", [FP16, "data.cache=true"]),
    ("AMP fp16, 8 workers, cache + GPU jitter", [FP16, *FAST]),
    ("AMP fp16, 14 workers, cache + GPU jitter", [FP16, *FAST, "data.num_workers=14"]),
    ("AMP bf16, 14 workers, cache + GPU jitter", [BF16, *FAST, "data.num_workers=14"]),
    ("fp32, 14 workers, cache + GPU jitter", [FP32, *FAST, "data.num_workers=14"]),
    ("AMP fp16, 14 workers, cache + GPU jitter, batch 128", [FP16, *FAST, "data.num_workers=14",
                                                             "trainer.batch_size=128"]),
    ("AMP fp16, 14 workers, cache + GPU jitter, stock EMA", [FP16, *FAST, "data.num_workers=14"]),
    ("AMP fp16, cache + GPU jitter, no loader", [FP16, *FAST]),
    ("AMP fp16, cache + GPU jitter, no loader, stock EMA", [FP16, *FAST]),
    ("AMP fp16, cache + GPU jitter, no loader, no EMA", [FP16, *FAST, "optim.ema_decay=0"]),
    ("AMP fp16, cache + GPU jitter, batch 128, no loader", [FP16, *FAST, "trainer.batch_size=128"]),
    ("AMP fp16, 14 workers, cache + GPU jitter, CUDA graphs", [FP16, *FAST, "data.num_workers=14", GRAPHS]),
    ("AMP fp16, 14 workers, cache + GPU jitter, batch 128, CUDA graphs", [FP16, *FAST, "data.num_workers=14",
                                                                        "trainer.batch_size=128", GRAPHS]),
    ("AMP bf16, 14 workers, cache + GPU jitter, CUDA graphs", [BF16, *FAST, "data.num_workers=14", GRAPHS]),
    ("AMP fp16, 14 workers, cache + GPU jitter, compiled", [FP16, *FAST, "data.num_workers=14",
                                                          "trainer.compile=default"]),
    ("AMP fp16, cache + GPU jitter, no loader, CUDA graphs", [FP16, *FAST, GRAPHS]),
    ("640 px: AMP fp16, 14 workers", [FP16, "data.img_size=640", "data.num_workers=14"]),
    ("640 px: AMP fp16, 14 workers, cache + GPU jitter", [FP16, *FAST, "data.img_size=640", "data.num_workers=14"]),
    ("640 px: AMP fp16, 14 workers, cache + GPU jitter, CUDA graphs", [FP16, *FAST, "data.img_size=640",
                                                                     "data.num_workers=14", GRAPHS]),
]


class GpuSampler:
    """nvidia-smi's utilization.gpu (%) every 100 ms while running."""

    def start(self) -> None:
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-lms", "100"], stdout=subprocess.PIPE, text=True)

    def stop(self) -> list[float]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return [float(line) for line in out.split() if line.strip().replace(".", "", 1).isdigit()]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Meter(Callback):
    """Times optimizer steps ``warmup`` .. ``steps`` and samples the GPU over that window."""

    def __init__(self, warmup: int, steps: int, sampler=None):
        self.warmup, self.steps = warmup, steps
        self.sampler, self.t0, self.images, self.wait, self.last_end = sampler or GpuSampler(), None, 0, 0.0, None
        self.result: dict = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self.t0 is None and trainer.global_step == self.warmup:
            _sync()
            self.sampler.start()
            self.t0 = time.perf_counter()
        elif self.t0 is not None and self.last_end is not None:
            self.wait += now - self.last_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.t0 is None:
            return
        self.images += batch["images"].shape[0]
        self.last_end = time.perf_counter()
        if trainer.global_step >= self.steps and not self.result:
            _sync()
            seconds = time.perf_counter() - self.t0
            util = self.sampler.stop()
            self.result = {"img_per_s": self.images / seconds, "util_mean": sum(util) / max(len(util), 1),
                           "util_min": min(util, default=float("nan")), "samples": len(util),
                           "wait_share": self.wait / seconds, "seconds": seconds,
                           "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0}


class SyncCounter(Callback):
    """Where the host waited for the GPU during optimizer step ``step`` (forward to the EMA's update):
    ``torch.cuda.set_sync_debug_mode("warn")`` makes every synchronising operation warn, and each warning's
    place (file:line) is counted. ``counts`` stays ``None`` without a GPU."""

    def __init__(self, step: int):
        self.step, self.counts, self._record = step, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and torch.cuda.is_available() and self._record is None:
            self._record = warnings.catch_warnings(record=True)
            self._caught = self._record.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._record is not None and self.counts is None:
            torch.cuda.set_sync_debug_mode("default")
            self._record.__exit__(None, None, None)
            self.counts = Counter(f"{w.filename}:{w.lineno}" for w in self._caught
                                  if "synchronizing" in str(w.message))


class Repeat:
    """``item``, ``times`` times: an iterable Lightning takes as one train loader (a list would be many loaders)."""

    def __init__(self, item, times: int):
        self.item, self.times = item, times

    def __iter__(self):
        return (self.item for _ in range(self.times))

    def __len__(self) -> int:
        return self.times


NO_LOADER = "no loader"  # in a variant's name: feed one collated batch again at every step
STOCK_EMA = "stock EMA"  # in a variant's name: Lightning's EMAWeightAveraging instead of yolozoo's FusedEMA


def run_variant(cfg, warmup: int, steps: int, accelerator: str = "gpu", sampler=None, no_loader: bool = False,
                stock_ema: bool = False) -> dict:
    """Train ``steps`` steps of ``cfg`` (on the GPU); the Meter's figures.

    no_loader: train on the loader's first batch, pinned, at every step, so what the loader costs
    drops out of the window and only the training step itself is left.
    stock_ema: average the weights with Lightning's ``EMAWeightAveraging`` (a loop over the tensors), not
    :class:`~yolozoo.ema.FusedEMA` (what training uses).
    """
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    L.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    dm.options["img_size"] = RENDER_SIZE  # the scenes' size; cfg.data.img_size is the model's input
    dm.prepare_data()
    dm.setup("fit")
    if no_loader:
        batch = next(iter(dm.train_dataloader()))
        if torch.cuda.is_available():
            batch = {k: v.pin_memory() for k, v in batch.items()}
        dm.train_dataloader = lambda: Repeat(batch, steps + 2)
    module = build_module(cfg, len(dm.classes), dm.classes)
    meter, syncs = Meter(warmup, steps, sampler), SyncCounter(steps)
    callbacks = [meter]
    if cfg.optim.ema_decay > 0:
        ema = EMAWeightAveraging if stock_ema else FusedEMA
        callbacks.append(ema(decay=cfg.optim.ema_decay, update_starting_at_step=0))
    callbacks.append(syncs)  # last: the EMA's update is in the step it counts
    torch._dynamo.reset()  # trainer.compile: each variant compiles its own model, not a recompile of the last one
    trainer = L.Trainer(max_steps=steps + 1, precision=cfg.trainer.precision, accelerator=accelerator, devices=1,
                        gradient_clip_val=cfg.trainer.gradient_clip_val,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        log_every_n_steps=cfg.trainer.log_every_n_steps, callbacks=callbacks)
    trainer.fit(module, datamodule=dm)
    if not meter.result:
        raise RuntimeError(f"fewer than {steps + 1} steps ran: raise scenes= or lower steps=")
    return {**meter.result, "syncs": syncs.counts}


def picks(text: str, name: str) -> bool:
    """Whether ``only=``'s ``text`` picks the variant ``name``: the whole name where a variant has it, else a part."""
    if any(text == n for n, _ in VARIANTS):
        return text == name
    return text in name


def syncs_text(counts: Counter | None) -> str:
    """``counts`` (place -> synchronising calls) as one line: the total, then the places, most first."""
    if counts is None:
        return "not counted (no GPU)"
    places = ", ".join(f"{place.split('site-packages/')[-1]} x{n}" for place, n in counts.most_common())
    return f"{sum(counts.values())}" + (f" ({places})" if places else "")


def table(gpu: str, opts: dict, rows: list[tuple]) -> str:
    """The section of reports/perf.md: the setting, then one row per variant measured (or failed)."""
    cfg0 = rows[0][1]
    lines = [f"GPU: {gpu}. Config: `preset=voc` ({cfg0.model.backbone} width {cfg0.model.width}, batch "
             f"{cfg0.trainer.batch_size}, {cfg0.optim.name}, EMA {cfg0.optim.ema_decay}), trained from scratch on "
             f"{opts['scenes']} digits scenes rendered at {RENDER_SIZE} px (channels_last unless NCHW is named); "
             f"steps {opts['warmup']}-{opts['steps']} of each variant timed, utilisation from nvidia-smi every "
             f"100 ms over that window; syncs/step: the host's waits for the GPU in the step after it. Target: "
             f">= 90% GPU utilisation.", "",
             "| variant | input px | images/s | GPU util mean (min) | loader wait | peak GiB | syncs/step |",
             "|---|---|---|---|---|---|---|"]
    for name, cfg, r in rows:
        if "error" in r:
            lines.append(f"| {name} | {cfg.data.img_size} | failed: {r['error'][:120]} | | | | |")
            continue
        lines.append(f"| {name} | {cfg.data.img_size} | {r['img_per_s']:.0f} | {r['util_mean']:.0f}% "
                     f"({r['util_min']:.0f}%) | {100 * r['wait_share']:.0f}% | {r['peak_gib']:.1f} | "
                     f"{sum(r['syncs'].values()) if r['syncs'] is not None else ''} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    try:
        own, overrides = split_options(argv, OPTIONS)
    except ConfigError as e:
        return user_error(e)
    only = [t.strip() for t in str(own.pop("only")).split("|") if t.strip()]
    for key, value in own.items():
        if not str(value).isdigit() or int(value) < 1:
            return user_error(f"{key}: expected a whole number >= 1, got {value!r}")
    variants = [v for v in VARIANTS if not only or any(picks(t, v[0]) for t in only)]
    if not variants:
        return user_error(f"only={'|'.join(only)}: no variant's name contains it; variants: "
                          + "; ".join(name for name, _ in VARIANTS))
    opts = {k: int(v) for k, v in own.items()}
    rest = [f"{k}={v}" for k, v in overrides.items()]
    if not torch.cuda.is_available():
        print("error: bench/perf_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name()
    with tempfile.TemporaryDirectory(prefix="yolozoo-gpu-") as tmp:
        base = ["preset=voc", "data.name=digits", f"data.root={tmp}", f"data.num_train={opts['scenes']}",
                "data.num_val=16", "data.img_size=416", "model.pretrained=false", "wandb.mode=disabled",
                "data.cache=false", "data.jitter_on=loader",  # the preset's loader speed-ups are variants here
                f"out_dir={tmp}/runs", *rest]
        rows = []
        for name, overrides in variants:
            try:
                cfg = load_config([*base, *overrides])
            except ConfigError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            try:
                r = run_variant(cfg, opts["warmup"], opts["steps"], no_loader=NO_LOADER in name,
                                stock_ema=STOCK_EMA in name)
            except Exception as e:  # one variant failing (out of memory, say) is a row of the table
                print(f"{name}: failed: {type(e).__name__}: {e}", flush=True)
                rows.append((name, cfg, {"error": f"{type(e).__name__}: {e}"}))
                continue
            finally:
                gc.collect()  # the variant's loader workers end before the next one starts
            rows.append((name, cfg, r))
            print(f"{name}: {r['img_per_s']:.0f} img/s, GPU {r['util_mean']:.0f}% (min {r['util_min']:.0f}, "
                  f"{r['samples']} samples), loader wait {100 * r['wait_share']:.0f}%, peak {r['peak_gib']:.1f} GiB, "
                  f"syncs/step {syncs_text(r['syncs'])}", flush=True)
            # after every variant: a run cut short keeps the rows it measured
            update_section("GPU training throughput (VOC-shaped preset)", table(gpu, opts, rows),
                           "python bench/perf_gpu.py " + " ".join(argv))
    print(table(gpu, opts, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
