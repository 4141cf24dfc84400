"""A sweep's figures (PNG + SVG), from its prepared results; only completed runs are plotted.

- ``<sweep>_params``: mAP vs Params(M), one line per backbone, widths as labelled points
  (backbones / widths tables);
- ``<sweep>_curves``: per-epoch val mAP@0.5, mAP@0.5:0.95 and train loss per row, mean over seeds with
  a ±std band (every sweep that recorded a history);
- ``<sweep>_assignment``: positives per GT and share of GT without a positive, per row
  (assigners table);
- ``<sweep>_forest``: each row's paired difference against its baseline (mAP@0.5) with its
  interval, one line per comparison (see :func:`forest_plot`).

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state, no GUI backend); SVGs
are written with a fixed ``svg.hashsalt`` and no date, so the same results give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .spec import ReportSpec, dotted_get

_RC = {"svg.hashsalt": "yolozoo", "svg.fonttype": "path", "font.size": 9}


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` deterministically; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    with matplotlib.rc_context(_RC):
        fig.savefig(paths[0], dpi=150, metadata={"Software": None})
        fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    return paths


def _completed(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "completed"]


def _note_absent(fig: Figure, df: pd.DataFrame, shown) -> None:
    """Name the rows a figure cannot show (no completed run with the data), so none vanishes silently."""
    absent = [r for r in dict.fromkeys(df["row"]) if r not in set(shown)]
    if absent:
        fig.text(0.01, 0.01, "not shown (no completed run with this data): " + ", ".join(absent), fontsize=7,
                 color="tab:red", va="bottom")


def params_plot(df: pd.DataFrame, spec: ReportSpec, stem: Path) -> list[Path]:
    """mAP@0.5 (mean ± std over seeds) against Params(M): one line per backbone, points labelled by width."""
    done = _completed(df).dropna(subset=["params", "mAP50"])
    if done.empty:
        return []
    done = done.assign(backbone=[dotted_get(c, "model.backbone") for c in done["config"]],
                       width=[dotted_get(c, "model.width") for c in done["config"]])
    points = done.groupby("row", sort=False).agg(backbone=("backbone", "first"), width=("width", "first"),
                                                 params=("params", "mean"), mean=("mAP50", "mean"),
                                                 std=("mAP50", "std"))
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(5.5, 4))
        ax = fig.subplots()
        for backbone, group in points.groupby("backbone", sort=True):
            group = group.sort_values("params")
            ax.errorbar(group["params"] / 1e6, group["mean"], yerr=group["std"].fillna(0), marker="o", capsize=3,
                        label=str(backbone))
            for _, p in group.iterrows():
                ax.annotate(f"w{p['width']:g}" if pd.notna(p["width"]) else "", (p["params"] / 1e6, p["mean"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set(xlabel="Params (M)", ylabel="val mAP@0.5", title=f"{spec.name}: mAP vs Params")
        ax.grid(alpha=0.3)
        ax.legend(title="backbone")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        _note_absent(fig, df, points.index)
    return save(fig, stem)


def _epoch_frame(history: list) -> pd.DataFrame:
    rows = [r for r in history if isinstance(r, dict) and "epoch" in r] if isinstance(history, list) else []
    return pd.DataFrame(rows)


def curves_plot(df: pd.DataFrame, spec: ReportSpec, stem: Path) -> list[Path]:
    """Per-epoch val mAP@0.5, mAP@0.5:0.95 and train loss per row: mean over seeds, ±std band where n >= 2.

    The loss panel tells a row that is still learning (falling loss, low mAP: the budget is short)
    from one that is not (flat loss: the method fails here)."""
    metrics = (("val/mAP50", "val mAP@0.5"), ("val/mAP", "val mAP@0.5:0.95"), ("train/loss", "train loss"))
    curves = {}
    for row, runs in _completed(df).groupby("row", sort=False):
        frames = [_epoch_frame(h).assign(seed=s) for h, s in zip(runs["history"], runs["seed"])]
        frames = [f for f in frames if not f.empty]
        if frames:
            curves[row] = pd.concat(frames, ignore_index=True)
    if not curves:
        return []
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(12, 3.6))
        axes = fig.subplots(1, 3)
        for ax, (key, name) in zip(axes, metrics):
            for row, frame in curves.items():
                if key not in frame:
                    continue
                stats = frame.groupby("epoch")[key].agg(["mean", "std"])
                line = ax.plot(stats.index, stats["mean"], marker=".", label=row)[0]
                band = stats["std"].fillna(0).to_numpy()
                ax.fill_between(stats.index, stats["mean"] - band, stats["mean"] + band, alpha=0.15,
                                color=line.get_color(), linewidth=0)
            ax.set(xlabel="epoch", ylabel=name)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{spec.name}: validation mAP and training loss per epoch (mean ± std over seeds)")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        _note_absent(fig, df, curves)
    return save(fig, stem)


def assignment_plot(df: pd.DataFrame, spec: ReportSpec, stem: Path) -> list[Path]:
    """Bars per row: positives per GT and % of GT without a positive (mean ± std over seeds, last epoch)."""
    done = _completed(df).dropna(subset=["pos_per_gt", "gt_without_pos"], how="all")
    if done.empty:
        return []
    stats = done.groupby("row", sort=False)[["pos_per_gt", "gt_without_pos"]].agg(["mean", "std"])
    x = np.arange(len(stats))
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(max(5.0, 1.1 * len(stats) + 2), 3.6))
        axes = fig.subplots(1, 2)
        for ax, (key, name, scale) in zip(axes, (("pos_per_gt", "positives per GT", 1.0),
                                                 ("gt_without_pos", "GT without a positive (%)", 100.0))):
            ax.bar(x, stats[(key, "mean")] * scale, yerr=stats[(key, "std")].fillna(0) * scale, capsize=3,
                   color="tab:blue")
            ax.set_xticks(x, stats.index, rotation=30, ha="right")
            ax.set(ylabel=name)
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(f"{spec.name}: label assignment statistics\n(last epoch, mean ± std over seeds)")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        _note_absent(fig, df, stats.index)
    return save(fig, stem)


def forest_plot(comparisons: list, stem: Path, title: str) -> list[Path]:
    """A forest plot: per comparison (A − B on one metric), the mean difference and its interval; 0 marked.

    ``comparisons``: :class:`~yolozoo.analysis.compare.Comparison` objects; those without an
    interval (fewer than 2 shared seeds) are drawn as a bare point and named as such.
    """
    if not comparisons:
        return []
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7, 0.45 * len(comparisons) + 1.4))
        ax = fig.subplots()
        y = np.arange(len(comparisons))[::-1]
        for yi, c in zip(y, comparisons):
            if c.interval is not None:
                color = "tab:blue" if c.n >= 3 and (c.interval[0] > 0 or c.interval[1] < 0) else "tab:gray"
                ax.errorbar([c.mean], [yi], xerr=[[c.mean - c.interval[0]], [c.interval[1] - c.mean]], fmt="o",
                            color=color, capsize=3)
            elif c.n:
                ax.plot([c.mean], [yi], "o", mfc="none", color="tab:gray")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, [f"{c.row_a} − {c.row_b} (n={c.n})" for c in comparisons])
        ax.set_xlabel("paired difference of means (95% interval, paired t)")
        ax.grid(axis="x", alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
    return save(fig, stem)


def render_plots(df: pd.DataFrame, spec: ReportSpec, out_dir: Path) -> list[Path]:
    """Every figure that applies to ``spec``'s table, under ``out_dir/<sweep>_*``."""
    paths = []
    if spec.table in ("backbones", "widths"):
        paths += params_plot(df, spec, out_dir / f"{spec.name}_params")
    paths += curves_plot(df, spec, out_dir / f"{spec.name}_curves")
    if spec.table == "assigners":
        paths += assignment_plot(df, spec, out_dir / f"{spec.name}_assignment")
    return paths


__all__ = ["assignment_plot", "curves_plot", "forest_plot", "params_plot", "render_plots", "save"]
