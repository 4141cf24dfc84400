"""Peer comparison: yolozoo's default against ultralytics YOLOv8n trained from scratch for the same time.

    python bench/perf_peer.py [seeds=0,1,2] [key=value ...]

Once per seed in ``seeds`` (default: the config's seed, one pair), steps 1 and 3 with ``seed=S`` for both:

1. Trains yolozoo with ``python bench/run.py`` (plus the config overrides) in fresh temp dirs, as
   bench/perf_default.py does, and reads its record: mAPs, training time and images/s.
2. Exports the dataset that run trained on (its ``data.*`` config) in the YOLO layout.
3. Trains ultralytics ``YOLO("yolov8n.yaml")`` on it from scratch, offline, with ``time=`` yolozoo's
   training time: ultralytics' defaults, but for ``pretrained=False amp=False plots=False val=False``,
   yolozoo's image size, batch size and flip probability (digits: 0, a flipped digit is another
   glyph), ``workers=0``, ``seed=`` yolozoo's, and yolozoo's torch thread count (ultralytics' own CPU default
   is CPUs - 1, i.e. one thread on a 2-core machine).
4. Predicts the val images with its last weights (its val settings: conf 0.001, NMS IoU 0.7,
   max_det 300) and scores them with yolozoo.evaluation (faster-coco-eval) against the COCO ground
   truth that yolozoo's run was scored on (``coco_gt()`` of the same val split).
5. Prints the comparison and writes the section "Peer comparison: ultralytics YOLOv8n" of
   reports/perf.md: each seed's figures, and over seeds the mean of each pair's difference with its paired t
   interval. Targets, met when every pair meets them: yolozoo ahead by >= 0.10 val mAP@0.5; yolozoo's training
   images/s >= ultralytics'.

Training time is the training loop's, validation passes included, for both: Lightning's ``train``
stage for yolozoo, ultralytics' ``on_train_start`` to its last ``on_fit_epoch_end``. Ultralytics'
settings, label caches and runs all go to the temp dir. Needs ultralytics: pip install -e '.[peer]'.
A quick check (about a minute):
python bench/perf_peer.py preset=smoke trainer.max_epochs=1 peer_time=10 perf_md=/tmp/perf.md
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError, load_config
from yolozoo.perf_report import PERF_MD, bench_run, describe_model, parse_seeds, update_section
from yolozoo.stats import paired_t

SECTION = "Peer comparison: ultralytics YOLOv8n"
PEER_MODEL = "yolov8n.yaml"
PREDICT = {"conf": 0.001, "iou": 0.7, "max_det": 300}  # ultralytics' own val settings
MARGIN = 0.10  # yolozoo's required lead in val mAP@0.5

OPTIONS = [
    KeyHelp("seeds", "", "comma-separated seeds, one yolozoo and one ultralytics run each (default: the config's "
            "seed, one pair)"),
    KeyHelp("peer_time", None, "ultralytics' training time in seconds; default: yolozoo's training time"),
    KeyHelp("peer_threads", None, "torch threads for ultralytics' training; default: this process's (yolozoo's)"),
    KeyHelp("perf_md", None, "the report to update; default: reports/perf.md of this source tree"),
]


def peer_detections(results: Iterable, image_ids: dict[Path, int]) -> list[dict]:
    """Ultralytics predictions -> the per-image detections of :func:`yolozoo.evaluation.evaluate_detections`.

    Args:
        results: ultralytics ``Results``, one per image: ``.path`` (the image file), ``.boxes.xyxy``
            float [N, 4] xyxy original-image pixels, ``.boxes.conf`` float [N], ``.boxes.cls`` float [N]
            0-based class index (the YOLO export writes yolozoo's label k as class k).
        image_ids: resolved image path -> 1-based COCO image id of the ground truth.

    Returns:
        ``[{"image_id": int, "boxes": float64 [N, 4] xyxy, "scores": float64 [N], "labels": int64 [N]}]``.
    """
    out = []
    for r in results:
        path = Path(r.path).resolve()
        if path not in image_ids:
            raise ValueError(f"ultralytics predicted {path}, which is not a val image of the ground truth")
        boxes, conf, cls = (np.asarray(getattr(r.boxes, k).cpu(), dtype=np.float64) for k in ("xyxy", "conf", "cls"))
        labels = np.rint(cls).astype(np.int64)
        if not np.array_equal(labels, cls):
            raise ValueError(f"{path}: non-integer class indices from ultralytics: {cls[labels != cls][:3]}")
        out.append({"image_id": image_ids[path], "boxes": boxes.reshape(-1, 4), "scores": conf, "labels": labels})
    return out


def _offline_ultralytics(tmp: Path):
    """Import ultralytics with its settings, downloads and telemetry confined to ``tmp`` (before its first import)."""
    if "ultralytics" in sys.modules:
        raise RuntimeError("ultralytics was imported before its settings dir was redirected")
    os.environ.update(YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(tmp / "ultralytics-config"))
    # ultralytics sets OMP_NUM_THREADS=1 when unset; keep torch's thread count as it is
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    import ultralytics
    from ultralytics.utils import SETTINGS

    SETTINGS.update(datasets_dir=str(tmp / "ultralytics-datasets"), weights_dir=str(tmp / "ultralytics-weights"),
                    runs_dir=str(tmp / "ultralytics-runs"), sync=False, clearml=False, comet=False, dvc=False,
                    mlflow=False, raytune=False, tensorboard=False, wandb=False)
    return ultralytics


def _train_peer(ultralytics, data_yaml: Path, out: Path, cfg: dict, seconds: float, threads: int) -> dict:
    """Train YOLOv8n from scratch for ``seconds``; count the images it trained on and time its training loop."""
    import torch

    model = ultralytics.YOLO(PEER_MODEL)
    count = {"images": 0, "in_epoch": 0, "start": None, "end": None}

    def on_train_start(trainer):
        torch.set_num_threads(threads)  # the trainer's select_device set ultralytics' own default
        count["start"] = time.perf_counter()

    def on_train_epoch_start(trainer):
        count["in_epoch"] = 0

    def on_train_batch_start(trainer):  # the loader has no drop_last: the epoch's last batch may be short
        n = min(trainer.batch_size, len(trainer.train_loader.dataset) - count["in_epoch"])
        count["in_epoch"] += n
        count["images"] += n

    def on_fit_epoch_end(trainer):
        count["end"] = time.perf_counter()

    for event, fn in [("on_train_start", on_train_start), ("on_train_epoch_start", on_train_epoch_start),
                      ("on_train_batch_start", on_train_batch_start), ("on_fit_epoch_end", on_fit_epoch_end)]:
        model.add_callback(event, fn)
    model.train(data=str(data_yaml), pretrained=False, amp=False, plots=False, val=False, time=seconds / 3600,
                imgsz=cfg["data"]["img_size"], batch=cfg["trainer"]["batch_size"], fliplr=cfg["data"]["flip"],
                workers=0, device="cpu", seed=cfg["seed"], project=str(out), name=f"yolov8n-s{cfg['seed']}",
                exist_ok=True)
    trainer = model.trainer
    train_time = count["end"] - count["start"]
    return {"last": trainer.last, "train_time_s": train_time, "images": count["images"],
            "train_img_per_s": count["images"] / train_time,
            "epochs": count["images"] / len(trainer.train_loader.dataset),
            "params": sum(p.numel() for p in model.model.parameters()), "threads": threads, "time_limit_s": seconds}


def _score_peer(ultralytics, weights: Path, val_ds, img_size: int, batch: int) -> dict:
    """Predict the val images with ``weights`` and evaluate them against ``val_ds.coco_gt()``."""
    from yolozoo.evaluation import evaluate_detections

    model = ultralytics.YOLO(weights)
    if model.names != dict(enumerate(val_ds.classes)):
        raise RuntimeError(f"ultralytics classes {model.names} are not the dataset's {val_ds.classes}")
    image_ids = {Path(rec.file).resolve(): rec.image_id for rec in val_ds.records}
    results = model.predict(source=[str(p) for p in image_ids], imgsz=img_size, batch=batch, device="cpu",
                            stream=True, verbose=False, **PREDICT)
    return evaluate_detections(val_ds.coco_gt(), peer_detections(results, image_ids), val_ds.classes)


def _over_seeds(values: list[float], fmt: str) -> str:
    """One figure per seed, ``a / b / c``."""
    return " / ".join(format(v, fmt) for v in values)


def _target(diffs: list[float], ok: list[bool], fmt: str) -> str:
    """A target row's value and verdict: the mean difference, its paired t interval over seeds, met by every pair?"""
    iv = paired_t(diffs)
    spread = f" [{iv.low:{fmt}}, {iv.high:{fmt}}] (paired t 95% interval, n = {iv.n})" if iv.low is not None else ""
    missed = len(ok) - sum(ok)
    verdict = f"MISSED ({missed} of {len(ok)} pairs)" if missed else "met (every pair)" if len(ok) > 1 else "met"
    return f"{iv.mean:{fmt}}{spread} | {verdict} |"


def _report(overrides: list[str], pairs: list[tuple[dict, dict, dict]], version: str, time_from: str) -> str:
    """The perf.md section: both detectors' figures per seed (``a / b / c``), then the two targets over the pairs of
    (yolozoo record, ultralytics training, ultralytics mAPs)."""
    ours = [r["metrics"] for r, _, _ in pairs]
    peers, peer_maps = [p for _, p, _ in pairs], [m for _, _, m in pairs]
    cfg = pairs[0][0]["config"]
    d = cfg["data"]
    seeds = [r["config"]["seed"] for r, _, _ in pairs]
    leads = [m["mAP50"] - pm["mAP50"] for m, pm in zip(ours, peer_maps)]
    speed = [m["train_img_per_s"] - p["train_img_per_s"] for m, p in zip(ours, peers)]

    def row(name: str, a: list[float], b: list[float], fmt: str) -> str:
        return f"| {name} | {_over_seeds(a, fmt)} | {_over_seeds(b, fmt)} |"

    return (
        f"yolozoo: `{' '.join(overrides) or 'default'}` ({describe_model(cfg['model'])}, "
        f"at most {cfg['trainer']['max_epochs']} epochs, time budget {cfg['trainer'].get('max_time')}). "
        f"Peer: {version} `YOLO(\"{PEER_MODEL}\")` from scratch, `time=` "
        f"{_over_seeds([p['time_limit_s'] for p in peers], '.0f')} s ({time_from}), `pretrained=False amp=False "
        f"plots=False val=False workers=0 imgsz={d['img_size']} batch={cfg['trainer']['batch_size']} "
        f"fliplr={d['flip']}`, the seed of the yolozoo run it is paired with, "
        f"{peers[0]['threads']} torch threads, its defaults otherwise. Same {d['name']} data "
        f"({d['num_train']} train / {d['num_val']} val scenes, gen_seed {d['gen_seed']}) exported in YOLO layout; "
        f"both scored by yolozoo.evaluation (faster-coco-eval) on the same val ground truth, ultralytics' "
        f"last.pt at conf {PREDICT['conf']}, NMS IoU {PREDICT['iou']}, max_det {PREDICT['max_det']}. "
        f"Seed{'s' if len(seeds) > 1 else ''} {_over_seeds(seeds, 'd')}, one pair each, run one after the other.\n\n"
        f"| figure{' (per seed)' if len(seeds) > 1 else ''} | yolozoo | ultralytics YOLOv8n |\n|---|---:|---:|\n"
        + "\n".join([
            row("val mAP@0.5", [m["mAP50"] for m in ours], [m["mAP50"] for m in peer_maps], ".3f"),
            row("val mAP@0.5:0.95", [m["mAP"] for m in ours], [m["mAP"] for m in peer_maps], ".3f"),
            row("train time (s, training loop incl. validation)", [m["train_time_s"] for m in ours],
                [p["train_time_s"] for p in peers], ".0f"),
            row("epochs", [m["epochs"] for m in ours], [p["epochs"] for p in peers], ".2f"),
            row("training images", [m["train_img_per_s"] * m["train_time_s"] for m in ours],
                [p["images"] for p in peers], ".0f"),
            row("train images/s", [m["train_img_per_s"] for m in ours], [p["train_img_per_s"] for p in peers], ".1f"),
            f"| params | {ours[0]['params'] / 1e6:.2f} M | {peers[0]['params'] / 1e6:.2f} M |"])
        + "\n\n| target | yolozoo minus ultralytics, mean over seeds | |\n|---|---|---|\n"
        f"| yolozoo ahead by >= {MARGIN:.2f} val mAP@0.5 | {_target(leads, [x >= MARGIN for x in leads], '+.3f')}\n"
        f"| yolozoo train images/s >= ultralytics' | {_target(speed, [x >= 0 for x in speed], '+.1f')}"
    )


def _parse(argv: list[str]) -> tuple[dict, list[str]]:
    """(own options, parsed; the yolozoo overrides as ``key=value``); a ValueError (ConfigError) before any work."""
    own, overrides = split_options(argv, OPTIONS)
    load_config(overrides)  # an unknown key or bad value fails here, not after training
    for key, kind in (("peer_time", float), ("peer_threads", int)):
        if own[key] is not None:
            try:
                own[key] = kind(own[key])
            except ValueError:
                raise ConfigError(f"{key}: expected a {kind.__name__}, got {own[key]!r}") from None
            if own[key] <= 0:
                raise ConfigError(f"{key}: must be > 0, got {own[key]}")
    own["seeds"] = parse_seeds(own["seeds"])
    return own, [f"{k}={v}" for k, v in overrides.items()]


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    try:
        own, overrides = _parse(argv)
    except ValueError as e:  # ConfigError included
        return user_error(e)
    if importlib.util.find_spec("ultralytics") is None:
        return user_error("ultralytics is not installed; run: pip install -e '.[peer]'")
    import torch

    own_threads = torch.get_num_threads()
    threads = own["peer_threads"] or own_threads
    from omegaconf import OmegaConf

    from yolozoo.data.export import export_dataset
    from yolozoo.data.registry import create_dataset
    from yolozoo.train import dataset_options

    pairs = []
    with tempfile.TemporaryDirectory(prefix="yolozoo-peer-") as tmp_dir:
        tmp = Path(tmp_dir)
        ultralytics = splits = export = None
        for seed in own["seeds"] or [None]:
            try:
                _, record = bench_run(tmp, f"s{seed}", overrides + ([f"seed={seed}"] if seed is not None else []))
            except subprocess.CalledProcessError as e:
                return e.returncode
            cfg, data = record["config"], OmegaConf.create(record["config"]["data"])
            if export is None:  # every seed trains on the same data: the seed is not in data.*
                splits = {s: create_dataset(data.name, s, data.root, **dataset_options(data)) for s in ("train", "val")}
                export = export_dataset(splits, "yolo", tmp / "yolo")
                ultralytics = _offline_ultralytics(tmp)
            seconds = own["peer_time"] or record["metrics"]["train_time_s"]
            peer = _train_peer(ultralytics, export / "data.yaml", tmp / "ultralytics-runs", cfg, seconds, threads)
            batch = cfg["trainer"]["batch_size"]
            pairs.append((record, peer, _score_peer(ultralytics, peer["last"], splits["val"], data.img_size, batch)))
            torch.set_num_threads(own_threads)  # ultralytics' predictor set its own; ours for what follows
    time_from = "peer_time" if own["peer_time"] else "yolozoo's training time"
    body = _report(overrides, pairs, f"ultralytics {ultralytics.__version__}", time_from)
    print(body)
    perf_md = Path(own["perf_md"]) if own["perf_md"] else PERF_MD
    update_section(SECTION, body, "python bench/perf_peer.py " + " ".join(argv), perf_md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
