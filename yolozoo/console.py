"""Console output of the command-line entry points: the run's own lines, not the libraries' chatter."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """Silence W&B's banner, Lightning's per-run info lines and three known-harmless warnings (process-wide).

    The warnings: a DataLoader with few workers (deliberate on small CPU runs), PyTorch's treespec
    deprecation raised inside Lightning, and Lightning's note that the module's batch hook (the colour
    jitter of ``data.jitter_on=device``) is used alongside a DataModule, as intended.
    """
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
