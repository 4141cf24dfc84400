"""The result of a search as a config file: the best trial's overrides, which ``bench/run.py config=FILE`` accepts.

The file holds plain dotted overrides, every key of the best trial's resolved config that
differs from its preset (``preset`` itself when not ``default``, and the whole ``assigner``
block), so it reproduces that config whatever base file, command line or ``config=`` made
it. Keys that only say where outputs go or how they are logged are left out (see
:data:`yolozoo.sweep.store.NON_IDENTITY_KEYS`). Re-run it, or make it a sweep's base::

    python bench/run.py config=results/search/tal-best.yaml
    python bench/run.py sweep=assigners config=results/search/tal-best.yaml
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial

from ..config import load_config
from ..sweep.store import NON_IDENTITY_KEYS
from .space import config_values

LEFT_OUT = (*NON_IDENTITY_KEYS, "name", "preset")


def best_overrides(config: dict) -> dict[str, Any]:
    """Dotted overrides that turn ``config``'s preset into ``config`` (a trial's resolved config, a dict)."""
    preset = config.get("preset", "default")
    values = config_values(config)
    default = config_values(load_config({"preset": preset}))
    out: dict[str, Any] = {} if preset == "default" else {"preset": preset}
    for key, value in values.items():
        if key in LEFT_OUT or key.startswith("wandb."):
            continue
        if key.startswith("assigner.") or key not in default or default[key] != value:
            out[key] = value
    return out


def write_best(trial: FrozenTrial, path: Path, header: list[str]) -> Path:
    """Write ``trial``'s overrides to ``path`` (YAML, ``header`` lines as comments first); return the path."""
    config = trial.user_attrs.get("config")
    if not config:
        raise ValueError(f"trial {trial.number} has no stored config")
    # one line per key; lists such as anchors in flow style on their line
    body = "".join(f"{k}: {yaml.safe_dump(v, default_flow_style=True, width=10**6).splitlines()[0]}\n"
                   for k, v in best_overrides(config).items())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text("".join(f"# {line}\n" for line in header) + body)
    tmp.replace(path)
    return path
