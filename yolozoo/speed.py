"""The timing pass: inference latency and throughput of a detector (forward + post-processing), and
whether anything else was using the CPU while they were measured.

Timings are taken in a pass of their own after training: warm-up calls, then the median over
``batches`` timed calls, on a fixed number of threads. Other processes on the machine can
slow a CPU timing many times over (two 2-thread jobs on 2 cores: 17x), so the pass measures
the CPU time that *other* processes used while it ran (``/proc/stat`` busy time minus this
process's own) and flags the timing as taken under load when that exceeds ``load_limit``
cores. The 1-minute load average at the end of the pass is recorded too (it counts this
process's own threads, so it is context, not the flag).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .postprocess import postprocess

LOAD_LIMIT = 0.25  # cores of other processes' CPU time during the pass above which a timing is flagged


@dataclass(frozen=True)
class Timing:
    """One timing pass. ``other_cpu``: cores' worth of CPU other processes used during the pass
    (None where ``/proc/stat`` is unreadable); ``under_load``: other_cpu > the pass's limit."""

    latency_ms: float  # batch 1, median per call
    throughput: float  # images/s at batch_size, from the median batch time
    batches: int
    batch_size: int
    threads: int
    other_cpu: float | None
    loadavg: float | None
    under_load: bool

    def metrics(self) -> dict:
        """The record's flat metrics (the flag as 1.0 / 0.0, so it averages into a share)."""
        return {"latency_ms": self.latency_ms, "throughput": self.throughput, "timing_other_cpu": self.other_cpu,
                "timing_loadavg": self.loadavg, "timing_under_load": float(self.under_load)}

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _busy_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """CPU-seconds all processes have been busy (every core), from /proc/stat; None if unreadable."""
    try:
        fields = [int(x) for x in stat.read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class LoadMeter:
    """Cores' worth of CPU time used by processes other than this one between start() and stop()."""

    def __init__(self, busy=_busy_seconds, own=_own_seconds, clock=time.perf_counter):
        self.busy, self.own, self.clock = busy, own, clock

    def start(self) -> None:
        self._start = (self.busy(), self.own(), self.clock())

    def stop(self) -> float | None:
        busy0, own0, t0 = self._start
        busy1, own1, t1 = self.busy(), self.own(), self.clock()
        if busy0 is None or busy1 is None or t1 <= t0:
            return None
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@torch.inference_mode()
def timing_pass(model: torch.nn.Module, img_size: int, batches: int = 50, batch_size: int = 32, warmup: int = 5,
                threads: int | None = 2, load_limit: float = LOAD_LIMIT, meter: LoadMeter | None = None) -> Timing:
    """Time ``model`` (eval mode, forward + NMS on random uint8 images ``[B, 3, img_size, img_size]``).

    ``latency_ms``: median of ``batches`` batch-1 calls; ``throughput``: ``batch_size`` over the
    median of ``batches`` batch-``batch_size`` calls; each after ``warmup`` untimed calls.
    ``threads``: torch's intra-op threads for the pass (restored after; None keeps the current).
    """
    if batches < 1:
        raise ValueError(f"timing_pass: batches must be >= 1, got {batches}")
    was_training, old_threads = model.training, torch.get_num_threads()
    model.eval()
    if threads:
        torch.set_num_threads(threads)
    device = next(model.parameters()).device
    meter = meter or LoadMeter()

    def median_seconds(batch: torch.Tensor) -> float:
        for _ in range(warmup):
            _run(model, batch)
        times = []
        for _ in range(batches):
            _sync(device)
            t0 = time.perf_counter()
            _run(model, batch)
            _sync(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    try:
        meter.start()
        one = torch.randint(0, 256, (1, 3, img_size, img_size), dtype=torch.uint8, device=device)
        many = torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8, device=device)
        latency = median_seconds(one)
        per_batch = median_seconds(many)
        other = meter.stop()
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    return Timing(latency_ms=1000 * latency, throughput=batch_size / per_batch, batches=batches,
                  batch_size=batch_size, threads=used_threads, other_cpu=other, loadavg=_loadavg(),
                  under_load=other is not None and other > load_limit)


def _run(model: torch.nn.Module, batch: torch.Tensor) -> None:
    out = model(batch)
    postprocess(out.cls_logits, out.boxes)


def measure_speed(model: torch.nn.Module, img_size: int, iters: int = 50, batch_size: int = 32,
                  warmup: int = 5) -> dict:
    """``{"latency_ms", "throughput"}`` of a timing pass (see :func:`timing_pass`) on the current threads."""
    t = timing_pass(model, img_size, batches=iters, batch_size=batch_size, warmup=warmup, threads=None)
    return {"latency_ms": t.latency_ms, "throughput": t.throughput}
