"""A sweep's figures (PNG + SVG) from its prepared results; only completed runs are plotted. Built on
``matplotlib.figure.Figure`` (no pyplot state, no GUI backend); no dates, fixed SVG ids: same results, same bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..stats import MIN_SEEDS
from .spec import ReportSpec, dotted_get

# render_plots runs inside rc_context(_RC): fixed fonts, and SVG ids that do not change between renders
_RC = {"svg.hashsalt": "yolozoo", "svg.fonttype": "path", "font.size": 9}
CAPTIONS = {"params": "mAP@0.5 against parameters (mean ± std over seeds)",
            "curves": "Validation mAP and training loss per epoch (mean ± std over seeds)",
            "assignment": "Label assignment statistics at the last epoch",
            "forest": "Paired differences against the baseline row (paired t 95% intervals)"}


def _save(fig: Figure, stem: Path, df: pd.DataFrame | None = None, shown=()) -> list[Path]:
    """Lay out, write ``stem.png`` and ``stem.svg`` (no dates); with ``df``, name under it the rows not ``shown``."""
    fig.tight_layout(rect=None if df is None else (0, 0.04, 1, 1))
    absent = [] if df is None else [r for r in dict.fromkeys(df["row"]) if r not in set(shown)]
    if absent:
        fig.text(0.01, 0.01, "not shown (no completed run with this data): " + ", ".join(absent), fontsize=7,
                 color="tab:red", va="bottom")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    return paths


def params_plot(df: pd.DataFrame, spec: ReportSpec, stem: Path) -> list[Path]:
    """mAP@0.5 (mean ± std over seeds) against Params(M): one line per backbone, points labelled by width."""
    done = df[df["status"] == "completed"].dropna(subset=["params", "mAP50"])
    if done.empty:
        return []
    points = done.groupby("row", sort=False).agg(config=("config", "first"), params=("params", "mean"),
                                                 mean=("mAP50", "mean"), std=("mAP50", "std"))
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for backbone, group in points.groupby([dotted_get(c, "model.backbone") for c in points["config"]], sort=True):
        group = group.sort_values("params")
        ax.errorbar(group["params"] / 1e6, group["mean"], yerr=group["std"].fillna(0), marker="o", capsize=3,
                    label=str(backbone))
        for _, p in group.iterrows():
            width = dotted_get(p["config"], "model.width")
            ax.annotate("" if width is None else f"w{width:g}", (p["params"] / 1e6, p["mean"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xlabel="Params (M)", ylabel="val mAP@0.5", title=f"{spec.name}: mAP vs Params")
    ax.grid(alpha=0.3)
    ax.legend(title="backbone")
    return _save(fig, stem, df, points.index)


def curves_plot(df: pd.DataFrame, spec: ReportSpec, stem: Path) -> list[Path]:
    """Per-epoch val mAP@0.5, mAP@0.5:0.95 and train loss per row: mean over seeds, ±std band where n >= 2.
    The loss tells a row still learning (short budget) from one that fails (flat loss)."""
    done = df[df["status"] == "completed"]
    epochs = pd.DataFrame([{"row": row, **e} for row, h in zip(done["row"], done["history"]) if isinstance(h, list)
                           for e in h if isinstance(e, dict) and "epoch" in e])
    if epochs.empty:
        return []
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3)
    for ax, (key, name) in zip(axes, (("val/mAP50", "val mAP@0.5"), ("val/mAP", "val mAP@0.5:0.95"),
                                      ("train/loss", "train loss"))):
        for row, frame in epochs.groupby("row", sort=False):
            if key in frame and frame[key].notna().any():  # a row whose epochs never logged it: no line
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
    return _save(fig, stem, df, epochs["row"].unique())


def assignment_plot(df: pd.DataFrame, spec: ReportSpec, stem: Path) -> list[Path]:
    """Bars per row: positives per GT and % of GT without a positive (mean ± std over seeds, last epoch)."""
    done = df[df["status"] == "completed"].dropna(subset=["pos_per_gt", "gt_without_pos"], how="all")
    if done.empty:
        return []
    stats = done.groupby("row", sort=False)[["pos_per_gt", "gt_without_pos"]].agg(["mean", "std"])
    x = np.arange(len(stats))
    fig = Figure(figsize=(max(5.0, 1.1 * len(stats) + 2), 3.6))
    for ax, (key, name, scale) in zip(fig.subplots(1, 2), (("pos_per_gt", "positives per GT", 1.0),
                                                           ("gt_without_pos", "GT without a positive (%)", 100.0))):
        ax.bar(x, stats[(key, "mean")] * scale, yerr=stats[(key, "std")].fillna(0) * scale, capsize=3,
               color="tab:blue")
        ax.set_xticks(x, stats.index, rotation=30, ha="right")
        ax.set(ylabel=name)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{spec.name}: label assignment statistics\n(last epoch, mean ± std over seeds)")
    return _save(fig, stem, df, stats.index)


def forest_plot(comparisons: list, spec: ReportSpec, stem: Path) -> list[Path]:
    """Per :class:`~yolozoo.analysis.tables.Comparison`, the mean difference and its interval (0 marked);
    one without an interval (fewer than 2 shared seeds) is a bare point."""
    if not comparisons:
        return []
    fig = Figure(figsize=(7, 0.45 * len(comparisons) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(comparisons))[::-1]
    for yi, s in zip(y, (c.stats for c in comparisons)):
        if s.low is not None:
            color = "tab:blue" if s.n >= MIN_SEEDS and s.excludes_zero else "tab:gray"
            ax.errorbar([s.mean], [yi], xerr=[[s.mean - s.low], [s.high - s.mean]], fmt="o", color=color, capsize=3)
        elif s.n:
            ax.plot([s.mean], [yi], "o", mfc="none", color="tab:gray")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [f"{c.row_a} − {c.row_b} (n={c.stats.n})" for c in comparisons])
    ax.set_xlabel("paired difference of means (95% interval, paired t)")
    ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{spec.name}: each row against its baseline, mAP@0.5")
    return _save(fig, stem)


@matplotlib.rc_context(_RC)
def render_plots(df: pd.DataFrame, spec: ReportSpec, out_dir: Path, comparisons: list = ()) -> list[Path]:
    """Every figure that applies to ``spec``'s table, then the forest plot of the mAP@0.5 ``comparisons``."""
    paths = []
    if spec.sweep.table in ("backbones", "widths"):
        paths += params_plot(df, spec, out_dir / f"{spec.name}_params")
    paths += curves_plot(df, spec, out_dir / f"{spec.name}_curves")
    if spec.sweep.table == "assigners":
        paths += assignment_plot(df, spec, out_dir / f"{spec.name}_assignment")
    return paths + forest_plot([c for c in comparisons if c.metric == "mAP50"], spec, out_dir / f"{spec.name}_forest")
