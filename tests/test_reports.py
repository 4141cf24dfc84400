"""Reports from a synthetic results frame with known numbers: every figure checked independently."""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from test_reports_helpers import (
    ASSIGNER_RUNS,
    ASSIGNERS_SWEEP,
    assigners_frame,
    assigners_spec,
    config,
    md_table,
    row,
    spec_of,
)

from yolozoo.analysis import compare_rows, prepare, render_sweep
from yolozoo.analysis.formats import to_markdown
from yolozoo.analysis.render import main
from yolozoo.analysis.spec import load_spec
from yolozoo.analysis.tables import backbone_name, build_table


def _done(assigner: str, index: int) -> list[float]:
    return [v[index] for v in ASSIGNER_RUNS[assigner].values() if v[0] == "completed"]


def _spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    spec = assigners_spec()
    paths = render_sweep(prepare(assigners_frame(), spec), spec, out)
    return out, paths


def test_means_stds_bold_and_deltas(rendered):
    out, _ = rendered
    table = md_table((out / "assigners.md").read_text())
    assert list(table) == ["tal", "nearby_grid", "all_grid", "single_grid"]  # sweep-file order
    for name in ("tal", "nearby_grid", "all_grid"):
        for header, index in (("mAP@0.5", 1), ("mAP@0.5:0.95", 2)):
            assert table[name][header].strip("*") == _spread(_done(name, index)), (name, header)
    # nearby_grid has the best means in both mAP columns: bold there and only there
    assert table["nearby_grid"]["mAP@0.5"] == f"**{_spread(_done('nearby_grid', 1))}**"
    assert table["nearby_grid"]["mAP@0.5:0.95"].startswith("**")
    assert not any(table[r]["mAP@0.5"].startswith("**") for r in ("tal", "all_grid"))
    # Params and FLOPs are equal in every row: a tie everywhere is not "best"
    assert table["tal"]["Params(M)"] == "11.20" and not table["nearby_grid"]["Params(M)"].startswith("**")
    base50, base = statistics.mean(_done("tal", 1)), statistics.mean(_done("tal", 2))
    for name in ("nearby_grid", "all_grid"):
        assert table[name]["Δ mAP@0.5"] == f"{statistics.mean(_done(name, 1)) - base50:+.3f}"
        assert table[name]["Δ mAP@0.5:0.95"] == f"{statistics.mean(_done(name, 2)) - base:+.3f}"
    assert table["tal"]["Δ mAP@0.5"] == "baseline"
    assert table["tal"]["n"] == "3/3" and table["all_grid"]["n"] == "2/3"
    assert table["tal"]["Model"] == "YOLO (ResNet-18)"


def test_failed_points_shown_not_averaged(rendered):
    out, _ = rendered
    text = (out / "assigners.md").read_text()
    table = md_table(text)
    # all_grid's failed seed (with a partial mAP50 of 0.99) is counted, not averaged
    assert table["all_grid"]["mAP@0.5"] == _spread([0.55, 0.57]) and table["all_grid"]["Notes"] == "1 failed"
    assert "all_grid: seed 1: CUDA out of memory" in text
    # single_grid has no completed run: every metric cell says so; the missing seed is counted
    assert table["single_grid"]["mAP@0.5"] == "failed" and table["single_grid"]["Δ mAP@0.5"] == "n/a"
    assert table["single_grid"]["n"] == "0/3" and table["single_grid"]["Notes"] == "1 failed, 1 running, 1 missing"
    assert "single_grid: seed 0: FloatingPointError: loss is nan at epoch 3\n" in text  # a traceback's last line
    csv = pd.read_csv(out / "assigners.csv")
    single = csv.set_index("row_label").loc["single_grid"]
    assert (single["completed"], single["failed"], single["running"], single["missing"]) == (0, 1, 1, 1)
    assert math.isnan(single["mAP50_mean"])


def test_provenance_and_reference_block(rendered):
    out, _ = rendered
    text = (out / "assigners.md").read_text()
    assert ("Provenance: dataset digits; preset default; epochs 18; scenes not recorded; image size 128; "
            "commit abc123; date 2026-11-20 to 2026-11-22; device cpu; wall time not recorded; "
            "runs 8 completed, 2 failed, 1 running.") in text
    ours, published = text.split("*Published VOC numbers", 1)
    assert "0.716" not in ours and "| nearby_grid | 0.716 | 0.468 |" in published


def test_latex_html_csv_carry_the_same_numbers(rendered):
    out, _ = rendered
    best = _spread(_done("nearby_grid", 1)).replace("±", r"$\pm$")
    tex = (out / "assigners.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert rf"\textbf{{{best}}}" in tex and r"nearby\_grid" in tex and "label\\_assignment\\_method" in tex
    html = (out / "assigners.html").read_text()
    assert f"<td><b>{_spread(_done('nearby_grid', 1))}</b></td>" in html and "<td>failed</td>" in html
    csv = pd.read_csv(out / "assigners.csv").set_index("row_label")
    for name in ("tal", "nearby_grid", "all_grid"):
        assert csv.loc[name, "mAP50_mean"] == pytest.approx(statistics.mean(_done(name, 1)), abs=1e-7)
        assert csv.loc[name, "mAP50_std"] == pytest.approx(statistics.stdev(_done(name, 1)), abs=1e-7)
        assert csv.loc[name, "mAP50_n"] == len(_done(name, 1))


def test_plots_written(rendered):
    _, paths = rendered
    names = {p.name for p in paths}
    assert {"assigners_curves.png", "assigners_curves.svg", "assigners_assignment.png",
            "assigners_assignment.svg"} <= names
    svg = next(p for p in paths if p.name == "assigners_curves.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<dc:date>" not in svg  # no timestamp in the file
    png = next(p for p in paths if p.name == "assigners_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_renders_are_byte_identical(rendered, tmp_path):
    out, paths = rendered
    spec = assigners_spec()
    frame = assigners_frame().sample(frac=1.0, random_state=3)  # row order of the store must not matter
    again = render_sweep(prepare(frame, spec), spec, tmp_path)
    assert [p.relative_to(tmp_path) for p in again] == [p.relative_to(out) for p in paths]
    for a, b in zip(paths, again):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_paired_comparison_interval():
    spec = assigners_spec()
    df = prepare(assigners_frame(), spec)
    c = compare_rows(df, "nearby_grid", "tal", "mAP50")
    diffs = [a - b for a, b in zip(_done("nearby_grid", 1), _done("tal", 1))]
    s = c.stats
    assert c.seeds == (0, 1, 2) and s.n == 3 and s.mean == pytest.approx(statistics.mean(diffs))
    half = 4.302653 * statistics.stdev(diffs) / 3 ** 0.5  # t(0.975, 2 df), by hand
    assert (s.low, s.high) == (pytest.approx(s.mean - half, abs=1e-6), pytest.approx(s.mean + half, abs=1e-6))
    assert s.method == "paired t"
    assert c.verdict == ("nearby_grid higher" if s.low > 0 else "not separable from seed noise")
    # all_grid shares seeds 0 and 2 with tal (its seed 1 failed): an interval, but no directional reading
    two = compare_rows(df, "all_grid", "tal", "mAP50")
    assert two.seeds == (0, 2) and two.verdict == "only 2 shared seeds: no reading (needs 3)"
    # no completed single_grid run: no interval is invented
    none = compare_rows(df, "single_grid", "tal", "mAP50")
    assert none.stats.n == 0 and none.stats.low is None and none.verdict == "n too small for an interval"
    with pytest.raises(ValueError, match="no row 'nope'; rows: tal, nearby_grid"):
        compare_rows(df, "nope", "tal")


def test_compare_file_lists_baseline_and_requested_pairs(rendered):
    out, _ = rendered
    text = (out / "assigners_compare.md").read_text()
    assert "| nearby_grid | tal | mAP@0.5 | 3 | 0, 1, 2 | +0.0900 |" in text
    assert "| single_grid | tal | mAP@0.5 | 0 | – | – | – | n too small for an interval |" in text


WIDTHS_SWEEP = {"name": "widths", "table": "widths",
                "axes": {"model.backbone": ["resnet18", "lcnet_075"], "model.width": [0.25, 0.5, 1.0]},
                "seeds": [0, 1], "baseline": {"model.width": 1.0}}


def _widths_frame() -> pd.DataFrame:
    """mAP50 = width/2 + (0.1 for resnet18) + seed/100; params = 10M*width (+1M for resnet18); one point absent."""
    rows = []
    for backbone, width, seed in itertools.product(("resnet18", "lcnet_075"), (0.25, 0.5, 1), (0, 1)):
        if (backbone, width) == ("lcnet_075", 0.5):
            continue  # never ran
        bonus = 0.1 if backbone == "resnet18" else 0.0
        rows.append(row("widths", {"model.backbone": backbone, "model.width": width}, "completed", seed,
                        config(backbone, float(width), seed=seed), mAP50=width / 2 + bonus + seed / 100,
                        mAP=width / 4 + seed / 100, params=10e6 * width + (1e6 if bonus else 0)))
    return pd.DataFrame(rows)


def test_two_axis_table_params_missing_point_and_per_backbone_baseline(tmp_path):
    spec = spec_of(WIDTHS_SWEEP)
    paths = render_sweep(prepare(_widths_frame(), spec), spec, tmp_path)
    table = md_table((tmp_path / "widths.md").read_text(), n_axes=2)
    assert list(table) == ["resnet18/0.25", "resnet18/0.5", "resnet18/1.0", "lcnet_075/0.25", "lcnet_075/0.5",
                           "lcnet_075/1.0"]
    headers = list(table["resnet18/1.0"])
    assert headers[:6] == ["Model", "Backbone", "Width", "Params(M)", "mAP@0.5", "mAP@0.5:0.95"]
    assert table["resnet18/0.5"]["Params(M)"] == f"{(10e6 * 0.5 + 1e6) / 1e6:.2f}"
    assert table["lcnet_075/0.25"]["Params(M)"] == "**2.50**"  # fewest params
    assert table["resnet18/1.0"]["mAP@0.5"] == f"**{_spread([0.6, 0.61])}**"
    # the delta is against the same backbone at width 1.0 (mean 0.605 for resnet18, 0.505 for lcnet)
    assert table["resnet18/0.25"]["Δ mAP@0.5"] == f"{statistics.mean([0.225, 0.235]) - 0.605:+.3f}"
    assert table["lcnet_075/0.25"]["Δ mAP@0.5"] == f"{statistics.mean([0.125, 0.135]) - 0.505:+.3f}"
    assert table["lcnet_075/0.5"]["mAP@0.5"] == "missing" and table["lcnet_075/0.5"]["n"] == "0/2"
    assert table["lcnet_075/0.5"]["Model"] == "YOLO (LCNet-0.75)"  # from the sweep file: it never ran
    assert table["lcnet_075/0.25"]["Model"] == "YOLO (LCNet-0.75)"
    assert {"widths_params.png", "widths_params.svg"} <= {p.name for p in paths}


def test_nothing_recorded_shows_every_point_missing(tmp_path):
    spec = assigners_spec()
    render_sweep(prepare(pd.DataFrame(), spec), spec, tmp_path)  # a source that never saw the sweep: no columns
    text = (tmp_path / "assigners.md").read_text()
    table = md_table(text)
    assert list(table) == ["tal", "nearby_grid", "all_grid", "single_grid"]
    assert all(r["mAP@0.5"] == "missing" and r["n"] == "0/3" and r["Model"] == "YOLO (ResNet-18)"
               for r in table.values())
    assert "runs none recorded" in text


def test_studies_of_one_sweep_are_never_mixed():
    spec = assigners_spec()
    plain = assigners_frame().assign(study="assigners")
    longer = assigners_frame().assign(study="assigners trainer.max_epochs=30", mAP50=0.9)
    both = pd.concat([plain, longer], ignore_index=True)
    default = prepare(both, spec)
    assert set(default["study"]) == {"assigners"} and len(default) == len(plain)
    other = prepare(both, spec, study="assigners trainer.max_epochs=30")
    table = build_table(other, spec)
    assert ("study", "assigners trainer.max_epochs=30") in table.provenance
    assert table.rows[0][2].text.startswith("0.900")
    with pytest.raises(ValueError, match="several studies .*pick one with study="):
        prepare(pd.concat([longer, longer.assign(study="assigners preset=voc")]), spec)
    with pytest.raises(ValueError, match="no study 'nope'"):
        prepare(both, spec, study="nope")


def test_bad_results_frame_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown status \\['done'\\]"):
        prepare(assigners_frame().assign(status="done"), assigners_spec())
    with pytest.raises(ValueError, match="lack column"):
        prepare(assigners_frame().drop(columns="assigner"), assigners_spec())


def test_sweep_without_table_kind_gets_the_generic_layout(tmp_path):
    data = {k: v for k, v in ASSIGNERS_SWEEP.items() if k != "table"}
    spec = spec_of(data)
    paths = render_sweep(prepare(assigners_frame(), spec), spec, tmp_path)
    text = (tmp_path / "assigners.md").read_text()
    assert "| Model | label_assignment_method | mAP@0.5 | mAP@0.5:0.95 | Params(M) |" in text
    assert "Published VOC" not in text and not any("assignment" in p.name for p in paths)


def test_backbone_names():
    names = ("resnet18", "resnet50d", "cspdarknet53", "lcnet_075", "mobilenetv2_100", "tf_efficientnet_lite0",
             "efficientnet_b3", "darknet_small")
    assert [backbone_name(n) for n in names] == ["ResNet-18", "ResNet-50", "CSPDarknet-53", "LCNet-0.75",
                                                 "MobileNetV2-1.00", "EfficientNet-Lite0", "EfficientNet-B3",
                                                 "darknet_small"]


def test_every_metric_a_table_shows_is_a_record_metric():
    from yolozoo.analysis.tables import EXTRAS, PAIRED, PARAMS
    from yolozoo.record import METRICS

    assert {c.key for c in (*PAIRED, PARAMS, *EXTRAS)} <= set(METRICS)


SHIPPED = sorted(Path(__file__).resolve().parents[1].glob("sweeps/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_sweep_renders_before_it_has_run(path, tmp_path):
    """Every shipped sweep file reads as a report spec; with nothing recorded, every point shows as missing."""
    spec = load_spec(path)
    assert spec.sweep.table in ("assigners", "backbones", "widths", "pretrained") and spec.baseline
    empty = pd.DataFrame(columns=["sweep", "status", "seed", *spec.axis_names])
    render_sweep(prepare(empty, spec), spec, tmp_path)
    table = md_table((tmp_path / f"{spec.name}.md").read_text(), n_axes=len(spec.axes))
    assert list(table) == ["/".join(p) for p in spec.points()]
    assert all(r["mAP@0.5"] == "missing" and r["Model"].startswith("YOLO (") for r in table.values())


def test_cli_rejects_unknown_key_and_bad_compare(capsys):
    assert main(["colour=red"]) == 2
    assert "unknown key 'colour'; valid keys: sweep, source, storage, study, out, compare" in capsys.readouterr().err
    assert main(["compare=assigners:tal"]) == 2
    assert "compare expects SWEEP:ROW_A,ROW_B" in capsys.readouterr().err


def test_cli_store_source_without_a_store(tmp_path, capsys):
    import yaml

    (tmp_path / "assigners.yaml").write_text(yaml.safe_dump(ASSIGNERS_SWEEP))
    assert main(["sweep=assigners", "source=store", f"sweeps_dir={tmp_path}", f"results_dir={tmp_path / 'results'}",
                 f"out={tmp_path / 'out'}"]) == 2
    assert f"error: no sweep store at {tmp_path / 'results' / 'sweeps.db'}" in capsys.readouterr().err


def test_readme_section_is_rewritten(tmp_path):
    from yolozoo.analysis.render import README_BEGIN, README_END, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{README_BEGIN}\nSTALE TABLE\n{README_END}\n\ntail\n")
    table = build_table(prepare(assigners_frame(), assigners_spec()), assigners_spec())
    update_readme(readme, [to_markdown(table, heading="###")], "python reports/render.py")
    text = readme.read_text()
    assert "STALE TABLE" not in text and text.startswith("# x\n\nintro\n\n")
    assert text.endswith(f"{README_END}\n\ntail\n")
    assert "### assigners: label assignment on digits" in text
