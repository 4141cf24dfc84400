"""Pretrain a backbone as a classifier, then start a detector from it.

    python bench/pretrain.py [model.backbone=darknet_small] [data=digits|PATH] [epochs=N] [out=PATH] [key=value ...]

``data=digits`` (default) crops the digit boxes from the built-in digits scenes; ``data=PATH``
is a torchvision ImageFolder (``PATH/train`` + ``PATH/val``, or one folder split by
``val_fraction``). Prints the validation accuracy and writes the backbone's weights to
``out``; then ``python bench/run.py model.backbone=... model.pretrained=OUT`` uses them.
All keys: ``yolozoo/pretrain.py`` (``PretrainConfig``).
"""

from __future__ import annotations

import sys

from yolozoo.config import ConfigError
from yolozoo.console import quiet_libraries


def main(argv: list[str]) -> int:
    from yolozoo.pretrain import PretrainConfig, load_pretrain_config, pretrain

    if any(a in ("-h", "--help") for a in argv):
        from yolozoo.cli_help import config_keys, print_help

        return print_help(__doc__, config_keys(PretrainConfig), with_config=False)

    try:
        cfg = load_pretrain_config(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    quiet_libraries()
    result = pretrain(cfg)
    print(f"pretrained {cfg.model.backbone} on {cfg.data}: {result['num_train']} train / {result['num_val']} val "
          f"images, {len(result['classes'])} classes, {result['steps']} steps")
    print(f"val accuracy {result['val_acc']:.4f}")
    print(f"wrote {result['out']}\nuse it: python bench/run.py model.backbone={cfg.model.backbone} "
          f"model.pretrained={result['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
