"""Speed and peak memory of every registered label assigner on the CPU.

Setting (the issue's): B = 16 images of 640 px, strides 8/16/32, 20 GT per image, 80
classes. Anchor-free assigners get one prior per cell (8400 priors); anchor-based ones
(grid family, yolov5) get YOLOv5's K = 3 anchors per cell (25200 priors). The row
``tal (ultralytics reference)`` is ``ultralytics.utils.tal.TaskAlignedAssigner`` (a dev
dependency) with the same hyperparameters (topk 10, alpha 0.5, beta 6, CIoU), called on the
same inputs, as shipped (it also widens GT sides under 16 px for its candidate test; ours does
that only with ``min_gt_side=16``, which does not change its speed).

Each assigner runs in its own subprocess. Time: median (and min) of ``--repeats`` calls
after one warm-up call. Memory: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the
calls minus before them (inputs already built, so this is the peak the assigner adds,
its returned AssignResult included; the ``[B, A, C]`` score targets alone are B*A*C*4
bytes). Usage::

    python bench/perf_assigners.py                       # all, 1 thread, writes reports/
    python bench/perf_assigners.py --names tal tal-ultralytics --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from yolozoo.assigners.base import Priors, create_assigner, list_assigners
from yolozoo.environment import device_name, git_commit
from yolozoo.models.anchors import COCO_ANCHORS as ANCHORS  # (YOLOv5 P3/P4/P5, px at 640)
from yolozoo.models.detector import make_priors as detector_priors

ROOT = Path(__file__).resolve().parents[1]

STRIDES = (8, 16, 32)
REFERENCE = "tal-ultralytics"  # worker name of the reference row
LABELS = {REFERENCE: "tal (ultralytics reference)"}


def anchor_based(name: str) -> bool:
    return name != REFERENCE and getattr(create_assigner(name), "requires_anchors", False)


class UltralyticsTAL:
    """The reference TAL called with our argument layout; returns its outputs' ``fg_mask`` only."""

    def __init__(self, num_classes: int):
        # Imported offline with its settings file in a temp dir (it checks DNS and writes settings on import).
        import tempfile

        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultralytics-"))
        try:
            from ultralytics.utils.tal import TaskAlignedAssigner
        except ImportError as e:
            raise SystemExit(f"the reference row needs ultralytics: pip install -e '.[dev]' ({e})") from e
        self.ref = TaskAlignedAssigner(topk=10, num_classes=num_classes, alpha=0.5, beta=6.0)

    def __call__(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask):
        out = self.ref(pred_scores, pred_boxes, priors.centers, gt_labels[..., None], gt_boxes,
                       gt_mask[..., None].float())
        return SimpleNamespace(fg_mask=out[3])


def make_priors(img: int, anchors=None, size_mult: float = 5.0) -> Priors:
    """Priors level by level, row-major cells; K anchors per cell adjacent, or one square per cell."""
    return detector_priors([(img // s, img // s) for s in STRIDES], list(STRIDES), size_mult, anchors)


def make_inputs(priors: Priors, B: int, M: int, C: int, img: int, seed: int = 0):
    """Random but plausible inputs: GT sizes log-uniform in [8, 320] px inside the image."""
    g = torch.Generator().manual_seed(seed)
    A = len(priors)
    wh = torch.exp(torch.empty(B, M, 2).uniform_(torch.log(torch.tensor(8.0)), torch.log(torch.tensor(320.0)),
                                                 generator=g))
    xy = torch.rand(B, M, 2, generator=g) * (img - wh)
    gt_boxes = torch.cat([xy, xy + wh], -1)
    gt_labels = torch.randint(0, C, (B, M), generator=g)
    gt_mask = torch.ones(B, M, dtype=torch.bool)
    pred_scores = torch.rand(B, A, C, generator=g)
    pred_boxes = priors.boxes()[None] + torch.randn(B, A, 4, generator=g) * 4
    return pred_scores, pred_boxes, priors, gt_labels, gt_boxes, gt_mask


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(args) -> dict:
    """One assigner, in this process: time and peak memory."""
    torch.set_num_threads(args.threads)
    priors = make_priors(args.img, ANCHORS if anchor_based(args.worker) else None)
    inputs = make_inputs(priors, args.batch, args.gt, args.classes, args.img)
    assigner = UltralyticsTAL(args.classes) if args.worker == REFERENCE else create_assigner(args.worker)
    before = _maxrss_mb()
    assigner(*inputs)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = assigner(*inputs)
        times.append((time.perf_counter() - start) * 1000)
    positives = result.fg_mask.sum().item() / (args.batch * args.gt)
    return dict(name=args.worker, priors=len(priors), ms=statistics.median(times), ms_min=min(times),
                peak_mb=_maxrss_mb() - before, pos_per_gt=positives)


def table(rows: list[dict], args) -> str:
    tal = next((r["ms"] for r in rows if r["name"] == "tal"), None)
    head = (
        f"B={args.batch}, {args.img} px, {args.gt} GT/image, {args.classes} classes, CPU, "
        f"torch {torch.__version__}, {args.threads} thread(s); median of {args.repeats} calls "
        "after a warm-up; peak = ru_maxrss delta in a subprocess per assigner.\n\n"
        f"Measured by `{' '.join(['python', 'bench/' + Path(__file__).name, *sys.argv[1:]])}` on "
        f"{device_name()}, commit {git_commit() or '?'}, load average before the run "
        f"{args.load:.1f} (other jobs share the CPU: compare rows of one table, not across tables).\n\n"
    )
    lines = ["| assigner | priors A | ms/call (median) | ms (min) | peak MB | x TAL | positives/GT |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['ms'] / tal:.2f}" if tal else "n/a"
        lines.append(
            f"| {LABELS.get(r['name'], r['name'])} | {r['priors']} | {r['ms']:.1f} | {r['ms_min']:.1f} "
            f"| {r['peak_mb']:.0f} | {ratio} | {r['pos_per_gt']:.1f} |"
        )
    return head + "\n".join(lines) + "\n" + targets(rows)


def targets(rows: list[dict]) -> str:
    """The issue's targets: TAL at least as fast as the reference; no assigner over 3x TAL."""
    ms = {r["name"]: r["ms"] for r in rows}
    if "tal" not in ms:
        return ""
    out = []
    if REFERENCE in ms:
        ok = "met" if ms["tal"] <= ms[REFERENCE] else "NOT met"
        out.append(f"- TAL vs reference: {ms['tal']:.1f} ms vs {ms[REFERENCE]:.1f} ms "
                   f"({ms[REFERENCE] / ms['tal']:.2f}x faster): target (at least as fast) {ok}.")
    ours = {k: v for k, v in ms.items() if k != REFERENCE}
    slowest = max(ours, key=ours.get)
    ok = "met" if ours[slowest] <= 3 * ms["tal"] else "NOT met"
    out.append(f"- Slowest assigner: {slowest} at {ours[slowest] / ms['tal']:.2f}x TAL: target (<= 3x TAL) {ok}.")
    return "\n" + "\n".join(out) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--names", nargs="*", default=None,
                   help=f"assigners to run (default: all registered, then {REFERENCE})")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--img", type=int, default=640)
    p.add_argument("--gt", type=int, default=20)
    p.add_argument("--classes", type=int, default=80)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per assigner process")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "perf_assigners.md")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    valid = [*list_assigners(), REFERENCE]
    names = args.names or valid
    unknown = sorted(set(names) - set(valid))
    if unknown:
        p.error(f"unknown assigner(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    args.load = os.getloadavg()[0]
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--worker", name] + [
            f"--{k}={getattr(args, k)}" for k in ("batch", "img", "gt", "classes", "repeats", "threads")
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{name} failed:\n{done.stderr}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: {rows[-1]['ms']:.1f} ms, {rows[-1]['peak_mb']:.0f} MB", file=sys.stderr)
    text = table(rows, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Label-assigner speed and memory\n\n" + text)


if __name__ == "__main__":
    main()
