"""Detect objects with a trained checkpoint: images with the boxes drawn, and COCO-format detections.

    python bench/predict.py checkpoint=PATH [source=IMG|DIR|dataset] [out=DIR] [conf=0.25] [iou=...]
                            [key=value ...]

``source``: an image file, a folder of images, or ``dataset`` (the val split of the
checkpoint's ``data.*``, which ``key=value`` overrides can change). Writes ``OUT/images/``
(each image with its boxes, class and score) and ``OUT/detections.json`` (COCO results:
``image_id``, ``category_id`` = class + 1, ``bbox`` [x, y, w, h] px of the original image,
``score``, ``file_name``). The checkpoint stores its config; ``key=value`` overrides apply on top.

Exit status: 0 on success; 2 for a bad option, override, checkpoint or source.
"""

from __future__ import annotations

import sys
from pathlib import Path

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError

OPTIONS = [
    KeyHelp("checkpoint", None, "a training checkpoint (.ckpt); required"),
    KeyHelp("source", "dataset", "an image file, a folder of images, or dataset (its val split)"),
    KeyHelp("out", None, "output folder; default <out_dir>/predict/<checkpoint's run folder>"),
    KeyHelp("conf", 0.25, "score threshold of the detections drawn and written"),
    KeyHelp("iou", None, "NMS IoU threshold; default the checkpoint's eval.iou_thresh"),
    KeyHelp("batch", 16, "images per forward pass"),
]


def _number(own: dict, key: str, kind=float):
    try:
        return kind(own[key])
    except ValueError:
        raise ConfigError(f"{key} must be a {kind.__name__}, got {own[key]!r}") from None


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    from yolozoo.checkpoint import class_names, config_from_checkpoint
    from yolozoo.data.base import DatasetError

    try:
        own, overrides = split_options(argv, OPTIONS)
        if not own["checkpoint"]:
            raise ConfigError("checkpoint=PATH is required (a .ckpt from runs/*/checkpoints/)")
        conf, batch = _number(own, "conf"), _number(own, "batch", int)
        if not 0 <= conf < 1:
            raise ConfigError(f"conf must be in [0, 1), got {conf}")
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, got {batch}")
        cfg, obj = config_from_checkpoint(own["checkpoint"], overrides)
        iou = _number(own, "iou") if own["iou"] is not None else cfg.eval.iou_thresh
        if not 0 < iou <= 1:
            raise ConfigError(f"iou must be in (0, 1], got {iou}")
    except (ConfigError, ValueError, FileNotFoundError, DatasetError) as e:
        return user_error(e)
    from yolozoo.checkpoint import build_detector
    from yolozoo.predict import Source, image_source, predict

    ckpt = Path(own["checkpoint"])
    try:
        if own["source"] == "dataset":
            from yolozoo.data.registry import create_dataset
            from yolozoo.train import dataset_options

            ds = create_dataset(cfg.data.name, "val", cfg.data.root, **dataset_options(cfg.data))
            source = Source([r.file for r in ds.records], [r.image_id for r in ds.records])
        else:
            source = image_source(own["source"])
        model = build_detector(cfg, obj, ckpt)
    except (ValueError, FileNotFoundError, DatasetError) as e:
        return user_error(e)
    run_folder = ckpt.parent.parent.name if ckpt.parent.name == "checkpoints" else ckpt.stem
    out = Path(own["out"]) if own["out"] else Path(cfg.out_dir) / "predict" / run_folder
    result = predict(model, source, out, cfg.data.img_size, class_names(obj, model.num_classes), batch_size=batch,
                     score_thresh=conf, iou_thresh=iou, max_det=cfg.eval.max_det)
    print(f"{result['images']} images, {result['detections']} detections (conf {conf}, iou {iou}): "
          f"{result['images_dir']}/, {result['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
