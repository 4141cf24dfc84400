"""Render from a real results store filled by a smoke sweep (yolozoo.sweep), end to end."""

from __future__ import annotations

import statistics

import pytest
import yaml
from test_reports_helpers import md_table

SWEEP = {"name": "report_smoke", "table": "assigners", "description": "smoke sweep for the report test",
         "base": {"data.num_train": 32, "data.num_val": 16},
         "axes": {"assigner": {"tal": {"assigner.name": "tal"}, "fcos": {"assigner.name": "fcos"},
                               # passes the config check (the file exists), fails when the weights are read
                               "broken": {"assigner.name": "tal", "model.pretrained": "CORRUPT"}}},
         "seeds": [0, 1], "baseline": {"assigner": "tal"}}


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    from yolozoo.sweep.cli import main as sweep_main

    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "sweeps").mkdir()
    path = tmp / "sweeps" / "report_smoke.yaml"
    corrupt = tmp / "corrupt.pt"
    corrupt.write_bytes(b"not a state dict")
    sweep = yaml.safe_dump(SWEEP, sort_keys=False).replace("CORRUPT", str(corrupt))
    path.write_text(sweep)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLOZOO_DATA", str(tmp / "data"))
        mp.setenv("MPLCONFIGDIR", str(tmp / "mpl"))
        code = sweep_main([f"sweep={path}", "preset=smoke", f"results_dir={tmp / 'results'}",
                           f"out_dir={tmp / 'runs'}", f"data.root={tmp / 'data'}"])
    assert code == 1  # the broken point failed; the others completed
    return tmp


@pytest.mark.slow
def test_render_from_smoke_sweep_store(smoke_store, tmp_path):
    from yolozoo.analysis.render import main
    from yolozoo.sweep import load_results

    args = ["sweep=report_smoke", "source=store", f"sweeps_dir={smoke_store / 'sweeps'}",
            f"results_dir={smoke_store / 'results'}"]
    assert main([*args, f"out={tmp_path / 'a'}", "compare=report_smoke:fcos,tal"]) == 0
    raw = load_results(sweep="report_smoke", results_dir=smoke_store / "results")
    text = (tmp_path / "a" / "report_smoke.md").read_text()
    table = md_table(text)
    assert list(table) == ["tal", "fcos", "broken"]
    for name in ("tal", "fcos"):
        done = raw[(raw["assigner"] == name) & (raw["status"] == "completed")]
        assert len(done) == 2 and table[name]["n"] == "2/2"
        for header, col in (("mAP@0.5", "mAP50"), ("mAP@0.5:0.95", "mAP")):
            vals = list(done[col])
            assert table[name][header].strip("*") == f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"
        assert table[name]["Model"] == "YOLO (LCNet-0.75)"
    assert table["broken"]["mAP@0.5"] == "failed" and table["broken"]["n"] == "0/2"
    assert "broken: seeds 0, 1: " in text and "corrupt.pt" in text
    assert "preset smoke" in text and "dataset digits" in text and "epochs 2" in text
    commit = raw["commit"].dropna().iloc[0]
    assert f"commit {commit}" in text
    assert (tmp_path / "a" / "plots" / "report_smoke_curves.png").is_file()
    assert (tmp_path / "a" / "plots" / "report_smoke_assignment.svg").is_file()
    compared = (tmp_path / "a" / "report_smoke_compare.md").read_text()
    assert compared.count("| fcos | tal | mAP@0.5 | 2 | 0, 1 |") == 1  # requested and baseline pair: once
    # the same store renders to the same bytes
    assert main([*args, f"out={tmp_path / 'b'}", "compare=report_smoke:fcos,tal"]) == 0
    for path in sorted((tmp_path / "a").rglob("*.*")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path.name
