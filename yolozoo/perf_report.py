"""Write one named section of ``reports/perf.md``, leaving the other sections as they are."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

PERF_MD = Path(__file__).resolve().parents[1] / "reports" / "perf.md"  # the source tree's (bench/ runs from a clone)


def update_section(name: str, body: str, command: str, path: Path = PERF_MD) -> None:
    """Replace (or append) the section ``name``; it records the command and machine that measured it.

    A CPU held below its speed (kernels limited to AVX2, fewer cores: :func:`~yolozoo.environment.cpu_limits`), as
    when an AVX2-only machine is emulated, writes its own section, ``name`` + ", slower CPU emulated"."""
    from .environment import cpu_info, cpu_limits, device_name, git_commit

    device = device_name()
    if not device.startswith("cuda") and cpu_limits(cpu_info()):
        name += ", slower CPU emulated"
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {device}, commit {git_commit() or '?'}"
    section = (f"<!-- begin {name} -->\n## {name}\n\nMeasured by `{command}` ({stamp}).\n\n{body.strip()}\n"
               f"<!-- end {name} -->")
    header = "# Performance figures\n\nEach section is rewritten by the script it names.\n"
    text = path.read_text() if path.exists() else header
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def describe_model(model) -> str:
    """A config's ``model`` section (DictConfig or dict) in words, for the figures' captions:
    ``mobilenetv2_100 from imagenet, frozen to stride 4, width 0.25, 1 head conv per branch``."""
    from .models.pretrained import SCRATCH

    pretrained = str(model["pretrained"])
    weights = "from scratch" if pretrained.strip().lower() in SCRATCH else f"from {pretrained}"
    frozen = f", frozen to stride {model['freeze']}" if model.get("freeze") else ""
    convs = model.get("head_convs", 2)
    return (f"{model['backbone']} {weights}{frozen}, width {model['width']}, {convs} head "
            f"conv{'s' if convs != 1 else ''} per branch")


def parse_seeds(text) -> list[int]:
    """``seeds=0,1,2`` of a bench script -> ``[0, 1, 2]`` (empty: one run at the config's seed); a ValueError names
    the option."""
    try:
        return [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"seeds: expected comma-separated whole numbers, got {text!r}") from None
