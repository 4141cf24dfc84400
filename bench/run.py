"""Run one experiment: ``python bench/run.py [preset=NAME] [key=value ...]``.

With no arguments: trains the default config on the built-in ``digits`` dataset on the
CPU, evaluates it, prints a summary and writes a result record under ``results/runs/``.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from yolozoo.config import ConfigError, load_config  # noqa: E402


def summary(record: dict) -> str:
    m = record["metrics"]

    def f(key, fmt="{:.3f}"):
        v = m.get(key)
        return "-" if v is None or v != v else fmt.format(v)

    rows = [
        ("mAP@0.5", f("mAP50")), ("mAP@0.5:0.95", f("mAP")),
        ("AP small / medium / large", f"{f('APs')} / {f('APm')} / {f('APl')}"),
        ("params (M)", f"{m['params'] / 1e6:.2f}"), ("FLOPs (G) per image", f"{m['flops'] / 1e9:.3f}"),
        ("train time (s)", f("train_time_s", "{:.1f}")), ("train img/s", f("train_img_per_s", "{:.1f}")),
        ("latency (ms/img, batch 1)", f("latency_ms", "{:.2f}")), ("throughput (img/s)", f("throughput", "{:.1f}")),
        ("epochs (best)", f"{m['epochs']} ({m['best_epoch']})"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join([f"== {record['name']} =="] + [f"{k:<{width}}  {v}" for k, v in rows])


def main(argv: list[str]) -> int:
    try:
        cfg = load_config(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    from yolozoo.train import train

    record = train(cfg)
    print(summary(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
