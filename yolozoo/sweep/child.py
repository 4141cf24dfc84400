"""``python -m yolozoo.sweep.child POINT.json``: train one sweep point in its own process.

Started by the sweep worker for a multi-device point (see :mod:`.point`); Lightning's DDP
launcher re-runs the same command for the other ranks. Every rank trains; global rank 0
writes the result file the worker reads (and is the only one logging to W&B).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so a killed worker does not leave its point training."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    """Entry point of the child process (and of its other DDP ranks): train the point in ``argv[0]``."""
    if len(argv) != 1:
        print("usage: python -m yolozoo.sweep.child POINT.json", file=sys.stderr)
        return 2
    _die_with_parent()
    spec: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    from .point import build_callback, train_point

    callbacks = [build_callback(c) for c in spec.get("callbacks", [])]
    result = train_point(spec["overrides"], spec["extra"], spec.get("panel_images", 8), callbacks)
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # set by the Trainer to this process's global rank
        from .store import json_safe

        path = Path(spec["result"])
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(json_safe(result)))
        tmp.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
