"""What a result was produced with: package versions, device, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "timm", "lightning", "faster-coco-eval", "numpy", "wandb", "optuna", "pandas")


def is_rank_zero() -> bool:
    """Not a secondary process of torchrun/srun/DDP (their RANK variables are 0 or unset)."""
    return all(int(os.environ.get(v, "0") or 0) == 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def git_commit(path: Path | None = None) -> str | None:
    """HEAD of the repo holding ``path`` (with ``-dirty`` if the tree has changes), or None."""
    cwd = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


# The widest x86 vector extension a CPU reports, widest first: what decides CPU training speed
# (an AVX2-only 2-core EPYC trains the default model about 3x slower than one with AVX-512).
ISA_FLAGS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"), ("asimd", "NEON"))


def _cpu_fields(cpuinfo: str | None) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (or of the text ``cpuinfo``)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def _cpu_flags(fields: dict[str, str]) -> set[str]:
    return set((fields.get("flags") or fields.get("Features") or "").split())


def _cpu_model(fields: dict[str, str]) -> str:
    return fields.get("model name") or fields.get("Model") or platform.processor() or platform.machine()


def cpu_info(cpuinfo: str | None = None) -> dict:
    """``{"model": "AMD EPYC 7B13", "isa": "AVX2", "cores": 2, "torch_isa": "AVX2"}`` from /proc/cpuinfo.

    ``isa`` is the widest vector extension the CPU's flags list (:data:`ISA_FLAGS`);
    ``torch_isa`` is what PyTorch's kernels use (``ATEN_CPU_CAPABILITY`` can lower it).
    """
    fields = _cpu_fields(cpuinfo)
    flags = _cpu_flags(fields)
    isa = next((name for flag, name in ISA_FLAGS if flag in flags), "unknown")
    return {"model": _cpu_model(fields), "isa": isa, "cores": os.cpu_count(),
            "torch_isa": torch.backends.cpu.get_cpu_capability()}


# CPU flags of the bfloat16 instructions oneDNN's bfloat16 convolutions need (x86: AVX-512 BF16, AMX; Arm: BF16)
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def slow_precision(precision: str, accelerator: str, cpuinfo: str | None = None) -> str | None:
    """Why ``trainer.precision`` would train slowly on this machine, or None: bfloat16 (``bf16-*``, and
    ``16-mixed``, which Lightning runs as bfloat16 on a CPU) on a CPU without bfloat16 instructions, or with
    oneDNN held below them (``ONEDNN_MAX_CPU_ISA``)."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if not on_cpu or not ("bf16" in str(precision) or str(precision) in ("16-mixed", "16")):
        return None
    fields = _cpu_fields(cpuinfo)
    has_bf16 = bool(_cpu_flags(fields) & set(BF16_FLAGS))
    held = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    held_below = held not in ("ALL", "DEFAULT") and "BF16" not in held and "AMX" not in held
    if has_bf16 and not held_below:
        return None
    flags = " or ".join(BF16_FLAGS[:2])
    where = (f"oneDNN is held to {held}, below the bfloat16 instructions ({flags})" if has_bf16
             else f"{_cpu_model(fields)} has no bfloat16 instructions ({flags})")
    return (f"trainer.precision={precision} on the CPU: {where}, so bfloat16 "
            "convolutions fall back to slow kernels (the default model trained 0.07x the images/s of float32 "
            "with oneDNN held to AVX2: reports/perf.md). Use trainer.precision=32-true on this machine.")


def device_name() -> str:
    """``cuda: NVIDIA H100 x1`` or ``cpu: AMD EPYC 7B13, AVX2, 2 threads``: what a timing was measured on."""
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    cpu = cpu_info()
    return f"cpu: {cpu['model']}, {cpu['isa']}{cpu_limits(cpu)}, {torch.get_num_threads()} threads"


def cpu_limits(cpu: dict) -> str:
    """What makes this process slower than its CPU, for a timing's stamp: PyTorch's or oneDNN's kernels held below the
    CPU's vector ISA (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``), fewer cores than the machine has (``taskset``).
    ``" (PyTorch kernels AVX2, oneDNN AVX2), 1 of 2 cores"``, or ``""``."""
    held = []
    if cpu["torch_isa"].replace("AVX512", "AVX-512") != cpu["isa"] and cpu["isa"] in ("AVX-512", "AVX2"):
        held.append(f"PyTorch kernels {cpu['torch_isa']}")
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        held.append(f"oneDNN {os.environ['ONEDNN_MAX_CPU_ISA']}")
    text = f" ({', '.join(held)})" if held else ""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpu["cores"]
    return text + (f", {usable} of {cpu['cores']} cores" if usable != cpu["cores"] else "")


_CODE_COMMIT: list = []  # the commit this process's code came from: HEAD at its first record (see environment)


def environment() -> dict:
    """Versions, device, CPU, host and commit for a run record.

    ``git_commit`` is read once per process, at its first record, so every run of a long sweep
    worker names the code the worker loaded, even when the tree moves on while it trains.
    """
    if not _CODE_COMMIT:
        _CODE_COMMIT.append(git_commit())
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "packages": versions, "device": device_name(), "cpu": cpu_info(),
            "host": platform.node(), "git_commit": _CODE_COMMIT[0]}
