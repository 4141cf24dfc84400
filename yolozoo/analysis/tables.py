"""A sweep's prepared results -> its summary (one row per grid point), its display table (layout: README, "Reports")
and paired comparisons of two rows over their shared completed seeds (the paired t interval of :mod:`yolozoo.stats`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from ..speed import LOAD_LIMIT
from ..stats import LEVEL, METHOD, MIN_SEEDS, Interval, paired_t, reading
from .load import STATUSES
from .spec import ReportSpec, dotted_get


@dataclass(frozen=True)
class Column:
    """How a table shows one metric of :data:`yolozoo.record.METRICS` (``key``)."""

    key: str
    header: str
    digits: int
    scale: float = 1.0
    better: str = "max"  # max | min
    spread: bool = True  # show ± std (False for what does not vary with the seed: params, FLOPs)


MAP50, MAP = Column("mAP50", "mAP@0.5", 3), Column("mAP", "mAP@0.5:0.95", 3)
PAIRED = (MAP50, MAP)  # the metrics of the deltas, the paired comparisons and the known study's directions
PARAMS = Column("params", "Params(M)", 2, 1e-6, "min", spread=False)
EXTRAS = (Column("APs", "APs", 3), Column("APm", "APm", 3), Column("APl", "APl", 3),
          Column("flops", "FLOPs(G)", 3, 1e-9, "min", spread=False),
          Column("latency_ms", "Latency(ms)", 2, better="min"),
          Column("throughput", "Throughput(img/s)", 0),
          Column("train_time_s", "Train time(s)", 0, better="min"))
TIMED = EXTRAS[4:6]  # latency and throughput: from the timing pass, flagged when taken under load
LOAD_MARK = "†"
AXIS_HEADERS = {"assigner": "label_assignment_method", "assigner.name": "label_assignment_method",
                "backbone": "Backbone", "model.backbone": "Backbone", "width": "Width", "model.width": "Width",
                "pretrained": "Pretrained", "model.pretrained": "Pretrained"}
STATE_ORDER = (*STATUSES[1:], "missing")  # which state a point with no completed run shows

# The known study's published VOC2007-test numbers of its assigners table: context only, never mixed with ours.
PUBLISHED_VOC = ("Published VOC numbers of the known study (ResNet-18 YOLO, VOC07+12 trainval, VOC2007 test); not "
                 "produced by yolozoo, for context only", ("label_assignment_method", "mAP@0.5", "mAP@0.5:0.95"),
                 (("single_grid", "0.640", "0.390"), ("nearby_grid", "0.716", "0.468"), ("all_grid", "0.662", "0.429")))


@dataclass
class Cell:
    """One table cell: plain text (``±`` and ``Δ`` as Unicode; each format renders them) and bold."""

    text: str
    bold: bool = False


@dataclass
class Table:
    """A display table plus what a reader needs to trust it."""

    title: str
    headers: list[str]
    rows: list[list[Cell]]
    provenance: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    reference: tuple | None = None  # (caption, headers, rows) of published numbers
    keys: int = 1  # leading key (text) columns: Model and the axes
    findings: list[str] = field(default_factory=list)  # the known study's directions, read on these results


def published_reference(spec: ReportSpec):
    """The known study's published numbers for ``spec``'s layout, if the sweep has any of their rows."""
    labels = {lab for axis in spec.axes for lab in axis.overrides}
    return PUBLISHED_VOC if spec.sweep.table == "assigners" and labels & {r[0] for r in PUBLISHED_VOC[2]} else None


def backbone_name(timm_name: str) -> str:
    """``resnet18`` -> ``ResNet-18``, ``cspdarknet53`` -> ``CSPDarknet-53``; other names as given."""
    for pattern, fmt in ((r"resnet(\d+)[a-z]?", "ResNet-{}"), (r"cspdarknet(\d+)", "CSPDarknet-{}"),
                         (r"darknet(\d+)", "Darknet-{}"), (r"lcnet_(\d)(\d+)", "LCNet-{}.{}"),
                         (r"mobilenetv2_(\d)(\d+)", "MobileNetV2-{}.{}"),
                         (r"(?:tf_)?efficientnet_(b\d)", "EfficientNet-{}"),
                         (r"(?:tf_)?efficientnet_lite(\d)", "EfficientNet-Lite{}")):
        if m := re.fullmatch(pattern, timm_name):
            return fmt.format(*(g.upper() if g[0] == "b" else g for g in m.groups()))
    return timm_name


@dataclass(frozen=True)
class Comparison:
    """``row_a - row_b`` on ``metric`` over their shared completed seeds."""

    row_a: str
    row_b: str
    metric: str
    seeds: tuple[int, ...]
    stats: Interval
    verdict: str  # :func:`yolozoo.stats.reading` of ``stats``


def _per_seed(df: pd.DataFrame, row: str, metric: str) -> dict[int, float]:
    if row not in set(df["row"]):
        raise ValueError(f"no row {row!r}; rows: {', '.join(dict.fromkeys(df['row']))}")
    done = df[(df["row"] == row) & (df["status"] == "completed")].dropna(subset=[metric])
    return dict(zip(done["seed"].astype(int), done[metric]))


def compare_rows(df: pd.DataFrame, row_a: str, row_b: str, metric: str = "mAP50") -> Comparison:
    """Pair rows ``row_a`` and ``row_b`` (``df["row"]`` labels of a prepared frame) seed by seed on ``metric``."""
    a, b = _per_seed(df, row_a, metric), _per_seed(df, row_b, metric)
    seeds = tuple(sorted(a.keys() & b.keys()))
    stats = paired_t([a[s] - b[s] for s in seeds])
    return Comparison(row_a, row_b, metric, seeds, stats, reading(stats, row_a, row_b))


def known_findings(df: pd.DataFrame, spec: ReportSpec) -> list[str]:
    """A sentence per direction in the sweep file's ``known`` (README, "Reports"), with its :data:`PAIRED` intervals."""
    rows = ["/".join(p) for p in spec.points()]
    present = set(df["row"])
    out = []
    for a, b in spec.sweep.known:
        bad = [r for r in (a, b) if r not in rows]
        if bad:
            raise ValueError(f"{spec.sweep.path}: known names row {bad[0]!r}, not a row of the table; rows: "
                             f"{', '.join(rows)}")
        claim = f"{a} > {b}"
        absent = [r for r in (a, b) if r not in present]
        if absent:
            out.append(f"{claim}: not measured yet (no runs of {' and '.join(absent)}).")
            continue
        c50, c = (compare_rows(df, a, b, col.key) for col in PAIRED)
        if c50.stats.n < MIN_SEEDS:
            out.append(f"{claim}: not read yet ({c50.stats.n} shared completed seeds; a reading needs {MIN_SEEDS}).")
            continue
        verdict = {f"{a} higher": "holds", f"{b} higher": "reverses"}.get(c50.verdict, c50.verdict)  # else: noise
        text50, text = (f"{x.stats.mean:+.3f} [{x.stats.low:+.3f}, {x.stats.high:+.3f}]" for x in (c50, c))
        out.append(f"{claim}: {verdict}. {a} − {b}: {MAP50.header} {text50}, {MAP.header} {text} "
                   f"({METHOD} {LEVEL:.0%} interval, n = {c50.stats.n} seeds).")
    return out


def _reasons(runs: pd.DataFrame) -> str:
    """``seeds 0, 1: <reason>; seed 2: <other reason>`` for a point's runs that did not complete; a
    traceback is shown by its last line (what went wrong), cut at 200 characters."""
    by_reason: dict[str, list[str]] = {}
    for seed, reason, status in zip(runs["seed"], runs["reason"], runs["status"]):
        if status != "completed" and isinstance(reason, str) and reason.strip():
            line = reason.strip().splitlines()[-1].strip()
            by_reason.setdefault(line if len(line) <= 200 else line[:199] + "…", []).append(str(seed))
    return "; ".join(f"seed{'s' if len(s) > 1 else ''} {', '.join(s)}: {r}" for r, s in by_reason.items())


def summarize(df: pd.DataFrame, spec: ReportSpec) -> pd.DataFrame:
    """One row per grid point (grid order; points outside the grid after): axis labels, model,
    run counts per status (``missing`` = expected seeds with no row), failure reasons, and per
    metric its mean, sample std (ddof=1) and n over completed seeds; deltas against the baseline row."""
    grid = spec.points()
    points = grid + [p for p in dict.fromkeys(df["point"]) if p not in grid]
    rows = []
    for point in points:
        runs = df.loc[[p == point for p in df["point"]]]  # not df["point"] == point: that compares element-wise
        done = runs[runs["status"] == "completed"]
        ran = set(runs["seed"].dropna().astype(int))
        configs = [c for c in (*done["config"], *runs["config"]) if isinstance(c, dict)]
        # a point that never ran has no config: the sweep file says what it would have run (base, then the axes)
        sets = spec.sweep.base | {k: v for a, lab in zip(spec.axes, point) for k, v in a.overrides.get(lab, {}).items()}
        backbone = dotted_get(configs[0], "model.backbone") if configs else sets.get("model.backbone")
        row = {a.name: lab for a, lab in zip(spec.axes, point)}
        row.update(row_label="/".join(point), model=f"YOLO ({backbone_name(backbone)})" if backbone else "YOLO",
                   expected=len(ran | set(spec.sweep.seeds)), **{s: int((runs["status"] == s).sum()) for s in STATUSES},
                   missing=len(set(spec.sweep.seeds) - ran), reasons=_reasons(runs))
        # timings taken under load are never averaged with clean ones: clean ones if any, else flagged
        loaded = done["timing_under_load"].fillna(0) > 0
        clean = done[~loaded] if (~loaded).any() else done
        for col in (MAP50, MAP, PARAMS, *EXTRAS):
            v = (clean if col in TIMED else done)[col.key].dropna()
            row.update({f"{col.key}_mean": float(v.mean()), f"{col.key}_std": float(v.std()), f"{col.key}_n": len(v)})
        row.update(timing_loaded=int(loaded.sum()), timing_flagged=bool(loaded.any() and loaded.all()))
        rows.append(row)
    summary = pd.DataFrame(rows)
    bases = [spec.baseline_of(p) for p in points]
    for col in PAIRED:
        means = dict(zip(points, summary[f"{col.key}_mean"]))
        summary[f"delta_{col.key}"] = [means[p] - means.get(b, math.nan) for p, b in zip(points, bases)]
    summary["is_baseline"] = [b == p for p, b in zip(points, bases)]
    return summary


def _value_text(row: pd.Series, col: Column) -> str:
    mean, std, n = row[f"{col.key}_mean"], row[f"{col.key}_std"], row[f"{col.key}_n"]
    if row["completed"] == 0:
        return next((s for s in STATE_ORDER if row[s]), "not recorded")
    if n == 0:
        return "–"
    text = f"{mean * col.scale:.{col.digits}f}"
    if col.spread and n > 1:
        text += f" ± {std * col.scale:.{col.digits}f}"
    if col in TIMED and row["timing_flagged"]:
        return text + f" {LOAD_MARK}"
    return text + (f" (n={n})" if n < row["completed"] else "")


def _best(summary: pd.DataFrame, col: Column) -> set[int]:
    """Indices of the points whose displayed mean is the column's best (ties all bold; none if all tie)."""
    shown = summary[f"{col.key}_mean"].map(lambda m: round(m * col.scale, col.digits))
    shown = shown[~summary["timing_flagged"]].dropna() if col in TIMED else shown.dropna()  # flagged: not comparable
    if shown.nunique() < 2:
        return set()
    return set(shown.index[shown == (shown.max() if col.better == "max" else shown.min())])


def provenance(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(field, value) pairs naming what the table was computed from: every distinct value, sorted."""
    def distinct(values) -> str:
        vals = sorted({str(v) for v in values if v is not None and v == v})
        return ", ".join(vals) if vals else "not recorded"

    dates = sorted(str(d)[:10] for d in df["date"] if d is not None and d == d and str(d))
    span = (dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}") if dates else "not recorded"
    n = df["status"].value_counts()
    counts = ", ".join(f"{n[s]} {s}" for s in STATUSES if s in n)
    reused = [v for v in df["reused_from"] if isinstance(v, str) and v]
    if reused:
        counts += (f" ({len(reused)} of them shared with {', '.join(sorted({v.split('/')[0] for v in reused}))}: "
                   f"the same run{'s' if len(reused) != 1 else ''}, same config and seed)")
    studies = sorted({s for s in df["study"] if isinstance(s, str)} - set(df["sweep"]))
    extra = [("study", "; ".join(studies))] if studies else []  # a study run with extra overrides
    return extra + [("dataset", distinct(df["dataset"])), ("preset", distinct(df["preset"])),
                    ("epochs", distinct(dotted_get(c, "trainer.max_epochs") for c in df["config"])),
                    ("scenes", distinct(dotted_get(c, "data.num_train") for c in df["config"])),
                    ("image size", distinct(dotted_get(c, "data.img_size") for c in df["config"])),
                    ("commit", distinct(df["commit"])), ("date", span), ("device", distinct(df["device"])),
                    ("wall time", wall_time(df)), ("runs", counts or "none recorded")]


def wall_time(df: pd.DataFrame) -> str:
    """``2 h 05 min for 36 runs on AMD EPYC 7B13 (AVX2)``: the sum of the runs' wall times per CPU model and ISA
    (runs shared with another sweep included: the time this table's runs take to train)."""
    ran = df[df["status"].isin(("completed", "failed")) & df["duration_s"].notna()]
    if ran.empty:
        return "not recorded"
    cpus = ran["cpu"].fillna("unknown CPU") + " (" + ran["isa"].fillna("ISA not recorded") + ")"
    parts = []
    for cpu, durations in ran["duration_s"].groupby(cpus):
        minutes, n = round(float(durations.sum()) / 60), len(durations)
        parts.append(f"{minutes // 60} h {minutes % 60:02d} min for {n} run{'s' if n != 1 else ''} on {cpu}")
    return "; ".join(parts) + " (sum of the runs' wall times)"


def build_table(df: pd.DataFrame, spec: ReportSpec, summary: pd.DataFrame | None = None) -> Table:
    """The display table of ``spec``'s prepared results ``df`` (layout: README, "Reports")."""
    summary = summarize(df, spec) if summary is None else summary
    core = [PARAMS, MAP50, MAP] if spec.sweep.table in ("backbones", "widths") else [MAP50, MAP]
    columns = core + [c for c in (PARAMS, *EXTRAS) if c not in core and summary[f"{c.key}_n"].sum() > 0]
    deltas = PAIRED if spec.baseline else ()
    has_notes = bool(summary[list(STATE_ORDER)].to_numpy().any())
    headers = (["Model"] + [AXIS_HEADERS.get(a.name, a.name) for a in spec.axes] + [c.header for c in columns]
               + [f"Δ {c.header}" for c in deltas] + ["n"] + (["Notes"] if has_notes else []))
    best = {c.key: _best(summary, c) for c in columns}
    rows = []
    for i, row in summary.iterrows():
        cells = [Cell(row["model"])] + [Cell(row[a.name]) for a in spec.axes]
        cells += [Cell(_value_text(row, c), bold=i in best[c.key]) for c in columns]
        for c in deltas:
            d = round(row[f"delta_{c.key}"] * c.scale, c.digits) + 0.0  # + 0.0: no "-0.000"
            cells.append(Cell("baseline" if row["is_baseline"] else "n/a" if d != d else f"{d:+.{c.digits}f}"))
        cells.append(Cell(f"{row['completed']}/{row['expected']}"))
        if has_notes:
            cells.append(Cell(", ".join(f"{row[s]} {s}" for s in STATE_ORDER if row[s])))
        rows.append(cells)
    notes = ["mean ± sample std over seeds; n = completed/expected seeds; bold = best in column; "
             "only completed runs are averaged."]
    if spec.baseline:
        base = ", ".join(f"{k}={v}" for k, v in spec.baseline.items())
        notes.append(f"Δ: difference of means against the row with {base} (same other axes).")
    notes += [f"{r['row_label']}: {r['reasons']}" for _, r in summary.iterrows() if r["reasons"]]
    if any(c in columns for c in TIMED):
        loaded = [f"{r['row_label']} ({r['timing_loaded']} of {r['completed']})" for _, r in summary.iterrows()
                  if r["timing_loaded"]]
        notes.append("Latency (batch 1) and throughput (batch 32): medians of a timing pass after training, on a "
                     f"fixed thread count. {LOAD_MARK}: every timing of the row was taken while other processes used "
                     f"the CPU (> {LOAD_LIMIT} cores during the pass), so it is not comparable; a row's timings "
                     "under load are left out when it has clean ones"
                     + (f": under load in {', '.join(loaded)}." if loaded else "."))
    title = spec.name + (f": {spec.sweep.description}" if spec.sweep.description else "")
    return Table(title=title, headers=headers, rows=rows, provenance=provenance(df), notes=notes,
                 reference=published_reference(spec), keys=1 + len(spec.axes), findings=known_findings(df, spec))
