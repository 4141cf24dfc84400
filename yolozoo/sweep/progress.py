"""What a worker shows: a line per finished point or trial (done/total, running, failed, ETA; counted from the
store, so over every worker), on a terminal in a tqdm bar on stderr, and a sweep's end table."""

from __future__ import annotations

import math
import sys
from datetime import timedelta

import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm


def eta_seconds(trials: list[FrozenTrial], remaining: int, running: int) -> float | None:
    """Remaining trials x the mean duration of completed ones, shared by the running workers (at least 1)."""
    durations = [d.total_seconds() for t in trials if t.state == TrialState.COMPLETE and (d := t.duration) is not None]
    return remaining * sum(durations) / len(durations) / max(running, 1) if durations else None


def format_eta(seconds: float | None) -> str:
    return "?" if seconds is None else str(timedelta(seconds=math.ceil(seconds)))


class Progress:
    """Progress of one study as this worker sees it. ``bar``: None = a tqdm bar only on a terminal."""

    def __init__(self, name: str, total: int, bar: bool | None = None, unit: str = "point"):
        self.name = name
        show = sys.stderr.isatty() if bar is None else bar
        self.bar = tqdm(total=total, desc=name, unit=unit, file=sys.stderr, disable=not show, dynamic_ncols=True,
                        bar_format="{desc}: {n}/{total} done |{bar}|{postfix}")

    def set_total(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def update(self, counts: dict[str, int], eta: float | None, message: str | None = None) -> None:
        """Print ``[assigners] 5/16 done, 2 running, 1 failed, ETA 0:12:30`` (`` | message``: a finished trial)."""
        self.bar.n = counts["done"]
        rest = f"{counts['running']} running, {counts['failed']} failed, ETA {format_eta(eta)}"
        self.bar.set_postfix_str(rest)
        line = f"[{self.name}] {counts['done']}/{counts['total']} done, {rest}"
        self.bar.write(f"{line} | {message}" if message else line, file=sys.stdout)

    def close(self) -> None:
        self.bar.close()


def summary_table(df: pd.DataFrame, axes: list[str]) -> str:
    """The final table: one row per point and seed, failures listed below it with their reasons."""
    if df.empty:
        return "(no points)"
    table = df[[*axes, "seed", "status", "mAP50", "mAP", "train_time_s", "trial"]].copy()
    for c, fmt in (("mAP50", ".3f"), ("mAP", ".3f"), ("train_time_s", ".0f")):
        table[c] = table[c].map(lambda v, fmt=fmt: "-" if v is None or v != v else f"{v:{fmt}}")
    lines = [table.to_string(index=False)]
    failed = df[df["status"] == "failed"]
    if len(failed):
        lines.append(f"\n{len(failed)} failed point(s):")
        lines += [f"  trial {row['trial']} {' '.join(f'{a}={row[a]}' for a in [*axes, 'seed'])}: {row['reason']}"
                  for _, row in failed.iterrows()]
    return "\n".join(lines)


def wall_time_line(df: pd.DataFrame, session_s: float | None) -> str:
    """``wall time: this run 0:41:12; all 36 recorded points 1:32:10 (sum of their run times)``."""
    parts = [] if session_s is None else [f"this run {format_eta(session_s)}"]
    done = df[df["status"].isin(("completed", "failed"))]["duration_s"].dropna() if "duration_s" in df else []
    if len(done):
        parts.append(f"all {len(done)} recorded points {format_eta(float(done.sum()))} (sum of their run times)")
    return "wall time: " + ("; ".join(parts) or "not recorded")
