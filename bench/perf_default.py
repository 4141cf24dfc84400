"""Time the default job end to end and check it against the foundation targets.

    python bench/perf_default.py [seeds=0,1,2] [key=value ...]

Runs ``python bench/run.py`` (plus any overrides) as a user would, with a fresh dataset
cache in a temp dir (so generation is included), once per seed in ``seeds`` (default: the
config's seed), and records wall time and val mAP in reports/perf.md, with the mean and t
interval over seeds. Targets on a 2-core CPU: under 10 minutes, val mAP@0.5 >= 0.90.

An AVX2-only 2-core machine can be emulated on a faster one: ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 taskset -c 0 python bench/perf_default.py``. The figures then go to
their own section (as every bench script's do), and the machine line names the limits.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.environment import device_name
from yolozoo.perf_report import bench_run, describe_model, parse_seeds, update_section
from yolozoo.stats import paired_t

OPTIONS = [KeyHelp("seeds", "", "comma-separated seeds, one run each (default: the config's seed, one run)")]


def run_once(overrides: list[str]) -> tuple[float, dict]:
    """Wall seconds of one ``bench/run.py`` with ``overrides`` (fresh data: generation included), and its record."""
    with tempfile.TemporaryDirectory(prefix="yolozoo-perf-") as tmp:
        try:
            return bench_run(Path(tmp), "run", overrides)
        except subprocess.CalledProcessError as e:
            raise SystemExit(e.returncode) from None


def plan(record: dict) -> str:
    """How the run's time budget set its length: epochs, steps and the last re-timing."""
    m, budget = record["metrics"], record.get("budget") or {}
    max_epochs, epochs = record["config"]["trainer"]["max_epochs"], m.get("epochs", 0)
    if not budget.get("total_steps"):
        return f"{max_epochs} epochs"
    steps, calibrated, refits = budget["total_steps"], budget["calibrated_s_per_step"], budget.get("refits")
    if not refits:
        return f"{epochs:.2f} epochs ({steps} steps at {calibrated:.3f} s/step)"
    return (f"{epochs:.2f} of at most {max_epochs} epochs ({steps} steps at a calibrated {calibrated:.3f} s/step, "
            f"last re-timed {refits[-1]['s_per_step']:.3f} s/step)")


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    try:
        own, overrides = split_options(argv, OPTIONS)
        seeds = parse_seeds(own["seeds"])
    except ValueError as e:  # ConfigError included
        return user_error(e)
    rest = [f"{k}={v}" for k, v in overrides.items()]
    runs = [run_once(rest + ([f"seed={s}"] if s is not None else [])) for s in (seeds or [None])]
    cfg = runs[0][1]["config"]
    rows = [f"| {r['config']['seed']} | {wall / 60:.1f} | {r['metrics']['train_time_s'] / 60:.1f} | {plan(r)} | "
            f"{r['metrics']['mAP50']:.3f} | {r['metrics']['mAP']:.3f} | {r['metrics']['train_img_per_s']:.0f} | "
            f"{r['metrics']['latency_ms']:.1f} / {r['metrics']['throughput']:.0f} |" for wall, r in runs]
    longest = max(wall for wall, _ in runs)
    map50 = paired_t(r["metrics"]["mAP50"] for _, r in runs)
    spread = f" [{map50.low:.3f}, {map50.high:.3f}] (t 95% interval, n = {map50.n})" if map50.low is not None else ""
    below = sum(r["metrics"]["mAP50"] < 0.90 for _, r in runs)
    body = "\n".join([
        f"Machine: {device_name()}.", "",
        f"Config: `{' '.join(rest) or 'default'}` ({describe_model(cfg['model'])}, batch "
        f"{cfg['trainer']['batch_size']}, time budget {cfg['trainer'].get('max_time') or 'none'}).", "",
        "| seed | wall min (incl. dataset generation) | train min | length | val mAP@0.5 | mAP@0.5:0.95 | train "
        "images/s | latency ms/img (batch 1) / images/s |", "|---|---:|---:|---|---:|---:|---:|---|", *rows, "",
        "| target | value | |", "|---|---|---|",
        f"| wall time < 10 min | longest {longest / 60:.1f} min | {'met' if longest < 600 else 'MISSED'} |",
        f"| val mAP@0.5 >= 0.90 | mean {map50.mean:.3f}{spread} | "
        + ("met (every run) |" if not below else f"MISSED ({below} of {len(runs)} runs below) |")])
    print(body)
    update_section("Default run on digits", body, "python bench/perf_default.py " + " ".join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
