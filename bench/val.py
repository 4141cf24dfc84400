"""Validate a trained checkpoint: the metrics summary a run prints (per-class AP included), and a record.

    python bench/val.py checkpoint=PATH [data.*=...] [key=value ...]

The checkpoint (``runs/*/checkpoints/*.ckpt``) stores the config it was trained with; every
``key=value`` given applies on top of it, e.g. ``data.num_val=2000`` or another dataset of the
same classes. On the run's own data it reproduces the metrics the run reported for that
checkpoint. The record is written under ``<results_dir>/val/``.

Exit status: 0 on success; 2 for a bad option, override or checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

from yolozoo.cli_help import KeyHelp, print_help, split_options, user_error, wants_help
from yolozoo.config import ConfigError

OPTIONS = [KeyHelp("checkpoint", None, "a training checkpoint (.ckpt); required")]


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, OPTIONS)
    from yolozoo.checkpoint import config_from_checkpoint
    from yolozoo.data.base import DatasetError

    try:
        own, overrides = split_options(argv, OPTIONS)
        path = own["checkpoint"]
        if not path:
            raise ConfigError("checkpoint=PATH is required (a .ckpt from runs/*/checkpoints/)")
        cfg, obj = config_from_checkpoint(path, overrides)
    except (ConfigError, ValueError, FileNotFoundError, DatasetError) as e:
        return user_error(e)
    from yolozoo.console import quiet_libraries
    from yolozoo.summary import summary
    from yolozoo.validate import validate_checkpoint, write_val_record

    quiet_libraries()
    try:
        record = validate_checkpoint(cfg, obj, path)
    except (ValueError, FileNotFoundError) as e:
        return user_error(e)
    print(summary(record))
    print(f"record: {write_val_record(record, Path(cfg.results_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
