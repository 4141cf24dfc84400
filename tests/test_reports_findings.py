"""What a report reads from its results: the known study's directions, timings under load, committed records."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from test_reports_helpers import ASSIGNERS_SWEEP, assigners_frame, config, md_table, row, spec_of

from yolozoo.analysis import build_table, prepare
from yolozoo.analysis.render import main
from yolozoo.sweep.published import publish, published_dir
from yolozoo.sweep.spec import read_sweep


def test_known_directions_are_read_with_their_intervals():
    spec = spec_of({**ASSIGNERS_SWEEP, "known": ["nearby_grid > tal", "all_grid > tal", "single_grid > tal"]})
    findings = build_table(prepare(assigners_frame(), spec), spec).findings
    # per seed mAP50 +0.10, +0.06, +0.11: mean +0.090, half width t(0.975, 2) 4.3027 * sd 0.02646 / sqrt(3) = 0.066;
    # mAP +0.06, +0.02, +0.04: mean +0.040, half width 4.3027 * 0.02 / sqrt(3) = 0.050
    assert findings[0] == ("nearby_grid > tal: holds. nearby_grid − tal: mAP@0.5 +0.090 [+0.024, +0.156], "
                           "mAP@0.5:0.95 +0.040 [-0.010, +0.090] (paired t 95% interval, n = 3 seeds).")
    assert findings[1] == "all_grid > tal: not read yet (2 shared completed seeds; a reading needs 3)."
    assert findings[2] == "single_grid > tal: not read yet (0 shared completed seeds; a reading needs 3)."


def test_known_direction_that_reverses_or_is_noise():
    spec = spec_of({**ASSIGNERS_SWEEP, "known": ["tal > nearby_grid"]})
    (finding,) = build_table(prepare(assigners_frame(), spec), spec).findings
    assert finding.startswith("tal > nearby_grid: reverses. tal − nearby_grid: mAP@0.5 -0.090 [-0.156, -0.024]")
    noisy = assigners_frame()
    noisy.loc[(noisy["assigner"] == "nearby_grid") & (noisy["seed"] == 1), "mAP50"] = 0.40
    spec = spec_of({**ASSIGNERS_SWEEP, "known": ["nearby_grid > tal"]})
    assert "not separable from seed noise" in build_table(prepare(noisy, spec), spec).findings[0]


def test_known_rows_must_exist_and_parse():
    spec = spec_of({**ASSIGNERS_SWEEP, "known": ["nearby > tal"]})
    with pytest.raises(ValueError, match="known names row 'nearby', not a row of the table"):
        build_table(prepare(assigners_frame(), spec), spec)
    with pytest.raises(ValueError, match="known: must be a list of 'ROW_A > ROW_B'"):
        spec_of({**ASSIGNERS_SWEEP, "known": ["nearby_grid beats tal"]})


def _timed(status_load: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for assigner, flags in status_load.items():
        for seed, flag in enumerate(flags):
            rows.append(row("assigners", {"assigner": assigner}, "completed", seed, config(assigner=assigner),
                            0.5, 0.3, latency_ms=10.0 + 100 * flag, throughput=300.0, timing_under_load=flag))
    return pd.DataFrame(rows)


def test_timings_under_load_are_flagged_never_averaged_in():
    three = {k: v for k, v in ASSIGNERS_SWEEP["axes"]["assigner"].items() if k in ("tal", "nearby_grid", "all_grid")}
    spec = spec_of({**ASSIGNERS_SWEEP, "axes": {"assigner": three}})
    # tal: clean; nearby_grid: one of three under load (left out); all_grid: every timing under load (flagged)
    table = build_table(prepare(_timed({"tal": [0, 0, 0], "nearby_grid": [0, 1, 0], "all_grid": [1, 1, 1]}), spec),
                        spec)
    from yolozoo.analysis.formats import to_markdown

    cells = md_table(to_markdown(table))
    assert cells["tal"]["Latency(ms)"] == "10.00 ± 0.00"
    assert cells["nearby_grid"]["Latency(ms)"] == "10.00 ± 0.00 (n=2)"  # the loaded 110 ms is not averaged in
    assert cells["all_grid"]["Latency(ms)"] == "110.00 ± 0.00 †"
    assert any("under load in nearby_grid (1 of 3), all_grid (3 of 3)" in n for n in table.notes)


def test_render_from_committed_records_without_a_store(tmp_path, capsys):
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    data = {**ASSIGNERS_SWEEP, "known": ["nearby_grid > tal"]}
    (sweeps / "assigners.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    spec = read_sweep(sweeps / "assigners.yaml")
    results = tmp_path / "results"
    for assigner, m50 in (("tal", [0.50, 0.52, 0.54]), ("nearby_grid", [0.60, 0.58, 0.65])):
        for seed, value in enumerate(m50):
            record = {"name": f"{assigner}-{seed}", "status": "completed", "started": "2026-11-25T10:00:00+00:00",
                      "finished": "2026-11-25T10:05:00+00:00", "config": config(assigner=assigner, seed=seed),
                      "metrics": {"mAP50": value, "mAP": value / 2}, "history": [],
                      "environment": {"cpu": {"model": "AMD EPYC 7B13", "isa": "AVX2"}, "git_commit": "abc"}}
            publish(published_dir(results, "assigners"), spec.point({"assigner": assigner}, seed), record, {})
    assert not (results / "sweeps.db").exists()
    out = tmp_path / "out"
    argv = [f"sweeps_dir={sweeps}", f"results_dir={results}", f"out={out}"]
    assert main(argv) == 0
    text = (out / "assigners.md").read_text()
    assert "wall time 0 h 30 min for 6 runs on AMD EPYC 7B13 (AVX2) (sum of the runs' wall times)" in text
    assert md_table(text)["nearby_grid"]["n"] == "3/3" and "nearby_grid > tal: holds." in text
    first = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(argv) == 0  # rendering again gives the same bytes
    assert first == {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # with readme=, the section shows the figures too (the curves and assignment statistics say why a row is low)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- begin generated tables -->\n<!-- end generated tables -->\n")
    assert main([*argv, f"readme={readme}"]) == 0
    text = readme.read_text()
    assert "![assigners: Paired differences against the baseline row (paired t 95% intervals)](out/plots/" \
           "assigners_forest.png)" in text
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert links and all((tmp_path / link).is_file() for link in links)
    # a record that is not a record names its file
    (published_dir(results, "assigners") / "junk.json").write_text(json.dumps({"x": 1}))
    assert main(argv) == 2 and "junk.json: not a published run record" in capsys.readouterr().err


def test_markdown_escapes_html_from_labels_and_descriptions():
    from yolozoo.analysis.formats import to_markdown

    sweep = {**ASSIGNERS_SWEEP, "description": "<img src=x onerror=alert(1)> & co",
             "axes": {"assigner": {"<b>tal</b>": {"assigner.name": "tal"}}}, "baseline": {"assigner": "<b>tal</b>"}}
    spec = spec_of(sweep)
    frame = pd.DataFrame([row("assigners", {"assigner": "<b>tal</b>"}, "completed", 0, config(), 0.5, 0.3)])
    text = to_markdown(build_table(prepare(frame, spec), spec))
    assert "<img" not in text and "<b>" not in text
    assert "&lt;img src=x onerror=alert(1)> &amp; co" in text and "&lt;b>tal&lt;/b>" in text


def test_render_help(capsys):
    assert main(["--help"]) == 0 and main(["-h"]) == 0
    out = capsys.readouterr().out
    assert "source=records" in out and "readme=null" in out and "Config keys" not in out


def test_the_known_studys_numbers_show_only_under_a_table_with_their_rows():
    from yolozoo.analysis.tables import published_reference

    assert published_reference(spec_of(ASSIGNERS_SWEEP))[2][0] == ("single_grid", "0.640", "0.390")
    more = {**ASSIGNERS_SWEEP, "name": "assigners_more",
            "axes": {"assigner": {"tal": {"assigner.name": "tal"}, "simota": {"assigner.name": "simota"}}}}
    assert published_reference(spec_of(more)) is None  # the same layout, none of the study's rows
