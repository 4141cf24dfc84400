"""Write a dataset out in another layout so other detectors train on identical data.

    python bench/export_data.py data.name=digits format=yolo out=DIR [data.* overrides]

``format`` is ``yolo`` (images/ + labels/ + data.yaml) or ``coco`` (images/ + annotations/).
"""

from __future__ import annotations

import sys
from pathlib import Path

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError, load_config

OPTIONS = [KeyHelp("format", None, "yolo | coco; required"), KeyHelp("out", None, "output folder; required")]


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    try:
        own, overrides = split_options(argv, OPTIONS)
        fmt, out = own["format"], own["out"]
        if fmt is None or out is None:
            raise ConfigError("pass format=yolo|coco and out=DIR")
        cfg = load_config(overrides)
    except ConfigError as e:
        return user_error(e)
    from yolozoo.data.export import export_dataset
    from yolozoo.data.registry import create_dataset
    from yolozoo.train import dataset_options

    options = dataset_options(cfg.data)
    splits = {split: create_dataset(cfg.data.name, split, cfg.data.root, **options) for split in ("train", "val")}
    try:
        path = export_dataset(splits, fmt, Path(out))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k}: {len(v)} images" for k, v in splits.items())
    print(f"wrote {cfg.data.name} as {fmt} to {path} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
