"""Show which priors a label assigner gives each ground-truth box: one PNG per pyramid level.

Usage::

    python bench/visualize_assign.py assigner.name=nearby_grid model.head=anchor
    python bench/visualize_assign.py assigner.name=atss index=3 split=train out=/tmp/assign
    python bench/visualize_assign.py assigner.name=tal image=photo.jpg [labels=photo.txt]

Script keys: ``index`` (sample of the dataset, default 0), ``split`` (``val`` | ``train``),
``image`` (a picture of your own instead of the dataset; its labels are YOLO txt lines
``cls cx cy w h`` normalised, read from ``labels=PATH``, else ``<image>.txt``, else the
``images/ -> labels/`` sibling), ``out`` (default ``<out_dir>/assign``). Every other
``key=value`` is a config override (``load_config``); an unknown key exits with status 2.

Predictions: the assigner sees the *untrained* model built from the config (seeded with
``seed``, eval mode), as at the first training step: class probabilities ~0.01 everywhere
and boxes near the priors (the anchor head: its anchors at the cell centres). Assigners
that ignore predictions (grid family, YOLOv5, FCOS, ATSS) give exactly their training
targets; TAL and SimOTA give their first-step targets.

Each PNG shows the letterboxed image, every GT box (one colour per GT) and, in the colour of
its GT, the centre (dot) and box (dashed) of each positive prior of that level. The
assignment statistics of :func:`yolozoo.assigners.stats.assignment_stats` are printed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolozoo.config import ConfigError, load_config

SCRIPT_KEYS = {"index": "0", "split": "val", "image": "", "labels": "", "out": ""}


@dataclass
class Visualization:
    """What one run drew: PNG paths, and per level the prior centres ``[n, 2]`` px plotted as positives."""

    paths: list[Path]
    plotted_centres: list[np.ndarray]
    assign: object  # AssignResult of the one image, batch of 1
    priors: object  # Priors
    gt_mask: object  # bool [1, M]
    stats: dict


def load_sample(cfg, index: int, split: str, image: str, labels: str):
    """(letterboxed batch of one from ``collate_detection``, number of classes)."""
    from yolozoo.data.base import DatasetError, DetectionDataset, ImageRecord, read_image
    from yolozoo.data.collate import collate_detection
    from yolozoo.data.registry import create_dataset
    from yolozoo.data.transforms import build_transforms
    from yolozoo.data.yolo import label_file, read_label_file
    from yolozoo.train import dataset_options

    transforms = build_transforms(cfg.data.img_size, train=False)
    if image:
        path = Path(image)
        if not path.is_file():
            raise DatasetError(f"image={image}: no such file")
        candidates = [Path(labels)] if labels else [path.with_suffix(".txt")]
        if not labels and "images" in path.parts[:-1]:
            candidates.append(label_file(path))
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DatasetError(f"no labels for {path} (looked for {', '.join(map(str, candidates))}); "
                               "pass labels=FILE with YOLO lines 'cls cx cy w h' (normalised)")
        h, w = read_image(path).shape[-2:]
        boxes, classes = read_label_file(found, w, h, num_classes=10**6)
        num_classes = int(classes.max()) + 1 if len(classes) else 1
        dataset = DetectionDataset([ImageRecord(path, w, h, boxes, classes)], [str(c) for c in range(num_classes)],
                                   transforms, name=str(path))
        index = 0
    else:
        dataset = create_dataset(cfg.data.name, split, cfg.data.root, transforms=transforms,
                                 **dataset_options(cfg.data))
        if not 0 <= index < len(dataset):
            raise DatasetError(f"index={index} out of range: {cfg.data.name} {split} has {len(dataset)} images")
    return collate_detection([dataset[index]]), dataset.num_classes


def plot_level(image, gt_boxes, gt_mask, assign, priors, level: int, title: str):
    """Figure of one level: image uint8 [3, S, S]; gt_boxes [M, 4] xyxy px; gt_mask [M]; assign for one image.

    Returns (figure, plotted prior centres ``[n, 2]``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.imshow(image.permute(1, 2, 0).numpy())
    for m in np.flatnonzero(gt_mask.numpy()):
        x1, y1, x2, y2 = gt_boxes[m].tolist()
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2.5, color=colours(m % 10), gid="gt"))
    pos = (assign.fg_mask[0] & (priors.level == level)).nonzero().flatten()
    owners = assign.gt_index[0, pos].tolist()
    for a, m in zip(pos.tolist(), owners):
        x1, y1, x2, y2 = priors.boxes()[a].tolist()
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1, ls="--", color=colours(m % 10),
                               gid="prior"))
    centres = priors.centers[pos].numpy().reshape(-1, 2)
    ax.scatter(centres[:, 0], centres[:, 1], s=18, c=[colours(m % 10) for m in owners], edgecolors="white",
               linewidths=0.5, zorder=3, gid="positives")
    size = image.shape[-1]
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    ax.set_title(title, fontsize=10)
    return fig, centres


def run(cfg, out: Path, index: int = 0, split: str = "val", image: str = "", labels: str = "") -> Visualization:
    """Assign on one sample with the untrained model of ``cfg``; write ``out/<assigner>_level<i>.png``."""
    import lightning as L
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from yolozoo.assigners.stats import assignment_stats
    from yolozoo.train import build_module

    batch, num_classes = load_sample(cfg, index, split, image, labels)
    L.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg, num_classes)
    model = module.model.eval()
    with torch.no_grad():
        pred = model(batch["images"])
    assign = module.assigner(pred.cls_logits.sigmoid(), pred.boxes, pred.priors, batch["gt_labels"],
                             batch["gt_boxes"], batch["gt_mask"])
    priors, gt_mask = pred.priors, batch["gt_mask"]
    levels = int(priors.level.max()) + 1
    stats = {k: float(v) for k, v in assignment_stats(assign, gt_mask, priors, num_levels=levels).items()}
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.assigner.name
    paths, plotted = [], []
    for lv in range(levels):
        stride = int(priors.strides[priors.level == lv][0])
        n = int((assign.fg_mask[0] & (priors.level == lv)).sum())
        title = f"{name}, model.head={cfg.model.head}: level {lv} (stride {stride}), {n} positive priors"
        fig, centres = plot_level(batch["images"][0], batch["gt_boxes"][0], gt_mask[0], assign, priors, lv, title)
        path = out / f"{name}_level{lv}.png"
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
        plotted.append(centres)
    return Visualization(paths, plotted, assign, priors, gt_mask, stats)


def report(vis: Visualization) -> str:
    """The statistics as text: positives per GT (each, mean, min), GT without positives, share per level."""
    fg, idx = vis.assign.fg_mask[0], vis.assign.gt_index[0]
    real = vis.gt_mask[0].nonzero().flatten().tolist()
    counts = [int((fg & (idx == m)).sum()) for m in real]
    s = vis.stats
    lines = [f"GT boxes: {len(real)}; positives per GT: {counts}"]
    if real:
        lines.append(f"positives per GT: mean {s['pos_per_gt_mean']:.2f}, min {s['pos_per_gt_min']:.0f}; "
                     f"GT without a positive: {100 * s['gt_without_pos']:.0f}%")
    shares = ", ".join(f"level {k.removeprefix('pos_level')} {100 * v:.0f}%" for k, v in s.items()
                       if k.startswith("pos_level"))
    lines.append(f"positives per level: {shares}")
    lines += [f"wrote {p}" for p in vis.paths]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        from yolozoo.cli_help import KeyHelp, print_help

        meanings = {"index": "sample of the dataset", "split": "val | train", "image": "a picture of your own",
                    "labels": "its YOLO txt labels (default: next to the image)", "out": "default <out_dir>/assign"}
        return print_help(__doc__, [KeyHelp(k, v or None, meanings[k]) for k, v in SCRIPT_KEYS.items()])
    script = dict(SCRIPT_KEYS)
    overrides = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in script:
            script[key] = value
        else:
            overrides.append(arg)
    try:
        cfg = load_config(overrides)
        if not script["index"].lstrip("-").isdigit():
            raise ConfigError(f"index must be an integer, got {script['index']!r}")
        if script["split"] not in ("train", "val"):
            raise ConfigError(f"split must be train or val, got {script['split']!r}")
    except ConfigError as e:
        print(f"error: {e} (script keys: {', '.join(SCRIPT_KEYS)})", file=sys.stderr)
        return 2
    from yolozoo.data.base import DatasetError

    out = Path(script["out"] or Path(cfg.out_dir) / "assign")
    try:
        vis = run(cfg, out, int(script["index"]), script["split"], script["image"], script["labels"])
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(vis))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
