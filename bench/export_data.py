"""Write a dataset out in another layout so other detectors train on identical data.

    python bench/export_data.py data.name=digits format=yolo out=DIR [data.* overrides]

``format`` is ``yolo`` (images/ + labels/ + data.yaml) or ``coco`` (images/ + annotations/).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolozoo.config import ConfigError, load_config, parse_overrides  # noqa: E402


def main(argv: list[str]) -> int:
    try:
        overrides = parse_overrides(argv)
        fmt, out = overrides.pop("format", None), overrides.pop("out", None)
        if fmt is None or out is None:
            raise ConfigError("pass format=yolo|coco and out=DIR")
        cfg = load_config(overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
