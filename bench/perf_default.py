"""Time the default job end to end and check it against the foundation targets.

    python bench/perf_default.py [key=value ...]

Runs ``python bench/run.py`` (plus any overrides) as a user would, with a fresh dataset
cache in a temp dir (so generation is included), and records wall time and val mAP in
reports/perf.md. Targets on a 2-core CPU: under 10 minutes, val mAP@0.5 >= 0.90.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from yolozoo.environment import device_name
from yolozoo.perf_report import describe_model, update_section

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        from yolozoo.cli_help import print_help

        return print_help(__doc__)
    with tempfile.TemporaryDirectory(prefix="yolozoo-perf-") as tmp:
        cmd = [sys.executable, str(ROOT / "bench" / "run.py"), f"data.root={tmp}/data", f"out_dir={tmp}/runs",
               f"results_dir={tmp}/results", "trainer.enable_progress_bar=false", "wandb.mode=offline", *argv]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=None)
        wall = time.perf_counter() - t0
        if proc.returncode:
            return proc.returncode
        (path,) = Path(tmp, "results", "runs").glob("*.json")
        record = json.loads(path.read_text())
    m = record["metrics"]
    ok_time, ok_map = wall < 600, m["mAP50"] >= 0.90
    budget = record.get("budget") or {}
    plan = (f"time budget {budget['max_time']}: {m.get('epochs', 0):.2f} of at most "
            f"{record['config']['trainer']['max_epochs']} epochs ({budget['total_steps']} steps at a calibrated "
            f"{budget['calibrated_s_per_step']:.3f} s/step" + "".join(
                f"; re-timed at step {r['at_step']}: {r['s_per_step']:.3f} s/step -> {r['total_steps']} steps"
                for r in budget.get("refits", [])) + ")" if budget.get("total_steps")
            else f"{record['config']['trainer']['max_epochs']} epochs")
    body = (f"Machine: {device_name()}.\n\n"
            f"Config: `{' '.join(argv) or 'default'}` ({describe_model(record['config']['model'])}, "
            f"batch {record['config']['trainer']['batch_size']}, {plan}).\n\n"
            f"| figure | value | target |\n|---|---|---|\n"
            f"| wall time, incl. dataset generation | {wall / 60:.1f} min "
            f"| < 10 min ({'met' if ok_time else 'MISSED'}) |\n"
            f"| train time | {m['train_time_s'] / 60:.1f} min | |\n"
            f"| val mAP@0.5 | {m['mAP50']:.3f} | >= 0.90 ({'met' if ok_map else 'MISSED'}) |\n"
            f"| val mAP@0.5:0.95 | {m['mAP']:.3f} | |\n"
            f"| train images/s | {m['train_img_per_s']:.0f} | |\n"
            f"| latency (ms/img, batch 1) / throughput (img/s) | {m['latency_ms']:.1f} / {m['throughput']:.0f} | |")
    print(body)
    update_section("Default run on digits", body, "python bench/perf_default.py " + " ".join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
