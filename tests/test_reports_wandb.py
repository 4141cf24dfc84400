"""Reports from W&B runs: real offline runs written by wandb, read back from their ``.wandb`` files."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import pytest
import yaml
from test_reports_helpers import md_table, spec_of

from yolozoo.analysis.wandb_file import find_offline_runs, read_wandb_file
from yolozoo.analysis.wandb_runs import api_run, offline_run, runs_to_frame
from yolozoo.config import load_config, to_dict

SWEEP = {"name": "assigners", "table": "assigners", "seeds": [0, 1, 2], "baseline": {"assigner": "tal"},
         "axes": {"assigner": {"tal": {"assigner.name": "tal"},
                               "nearby_grid": {"assigner.name": "nearby_grid", "model.head": "anchor"}}}}
# (assigner, seed) -> final (mAP50, mAP), or None for a run that exits with code 1; tal seed 2 never ran
RUNS = {("tal", 0): (0.50, 0.30), ("tal", 1): (0.54, 0.33), ("nearby_grid", 0): (0.61, 0.37),
        ("nearby_grid", 1): (0.65, 0.40), ("nearby_grid", 2): None}
STEPS_LOGGED = 400  # per-step losses, enough to span several 32 KiB blocks of the datastore


def _log_run(root, assigner: str, seed: int, final) -> None:
    """Log one run the way Lightning's WandbLogger does for ``yolozoo.train``."""
    import wandb

    head = "anchor" if assigner == "nearby_grid" else "free"
    cfg = to_dict(load_config(["preset=smoke", f"assigner.name={assigner}", f"model.head={head}", f"seed={seed}"]))
    run = wandb.init(mode="offline", dir=str(root), project="yolozoo", group="assigners",
                     name=f"{assigner}-s{seed}", config=cfg)
    if (assigner, seed) == ("tal", 0):
        for step in range(STEPS_LOGGED):
            run.log({"train/loss_step": 1.0 / (step + 1), "trainer/global_step": step})
    m50, m = final or (0.2, 0.1)
    for epoch in range(3):  # Lightning: 0-based epoch; train and val scalars in separate steps
        run.log({"train/loss": 3.0 - epoch, "train/assign/pos_per_gt_mean": 4.0 + seed,
                 "train/assign/gt_without_pos": 0.05, "epoch": epoch})
        run.log({"val/mAP50": m50 * (epoch + 1) / 3, "val/mAP": m * (epoch + 1) / 3, "epoch": epoch})
    if final is None:
        run.finish(exit_code=1)
        return
    run.summary.update({"mAP50": m50, "mAP": m, "params": 1.5e6, "flops": 0.2e9, "latency_ms": 3.0,
                        "epochs": 3, "best_epoch": 3})
    run.finish()


@pytest.fixture(scope="module")
def offline_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
            mp.setenv(var, str(root / var.lower()))
        for (assigner, seed), final in RUNS.items():
            _log_run(root / "runs", assigner, seed, final)
    return root / "runs"


def test_datastore_reader_reads_what_was_logged(offline_root):
    paths = find_offline_runs(offline_root)
    assert len(paths) == len(RUNS)
    runs = {r["name"]: r for r in map(read_wandb_file, paths)}
    big = runs["tal-s0"]
    assert max(p.stat().st_size for p in paths) > 3 * 32768  # the reader crossed block boundaries
    assert len([h for h in big["history"] if "train/loss_step" in h]) == STEPS_LOGGED
    assert big["history"][STEPS_LOGGED - 1]["train/loss_step"] == pytest.approx(1.0 / STEPS_LOGGED)
    assert big["group"] == "assigners" and big["exit_code"] == 0
    assert big["config"]["assigner"] == {"name": "tal"} and big["config"]["seed"] == 0
    assert big["config"]["trainer"]["max_epochs"] == 2 and big["summary"]["mAP50"] == 0.50
    assert runs["nearby_grid-s2"]["exit_code"] == 1


def test_offline_run_history_is_per_epoch(offline_root):
    run = offline_run(next(p for p in find_offline_runs(offline_root) if read_wandb_file(p)["name"] == "tal-s1"))
    assert [h["epoch"] for h in run["history"]] == [1, 2, 3]
    assert run["history"][-1]["val/mAP50"] == pytest.approx(0.54) and run["history"][0]["train/loss"] == 3.0
    assert run["status"] == "completed"


def test_render_from_offline_runs(offline_root, tmp_path):
    from yolozoo.analysis.render import main

    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "assigners.yaml").write_text(yaml.safe_dump(SWEEP))
    args = ["sweep=assigners", "source=wandb_offline", f"storage={offline_root}", f"sweeps_dir={tmp_path / 'sweeps'}",
            "compare=assigners:nearby_grid,tal"]
    assert main([*args, f"out={tmp_path / 'a'}"]) == 0
    table = md_table((tmp_path / "a" / "assigners.md").read_text())
    for name in ("tal", "nearby_grid"):
        done = [v for (a, _), v in RUNS.items() if a == name and v]
        for header, i in (("mAP@0.5", 0), ("mAP@0.5:0.95", 1)):
            vals = [d[i] for d in done]
            assert table[name][header].strip("*") == f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"
    assert table["tal"]["n"] == "2/3" and table["tal"]["Notes"] == "1 missing"
    assert table["nearby_grid"]["n"] == "2/3" and table["nearby_grid"]["Notes"] == "1 failed"
    assert table["nearby_grid"]["Δ mAP@0.5"] == f"{0.63 - 0.52:+.3f}"
    text = (tmp_path / "a" / "assigners.md").read_text()
    assert "nearby_grid: seed 2: exit code 1" in text and "preset smoke" in text and "epochs 2" in text
    assert (tmp_path / "a" / "plots" / "assigners_curves.svg").is_file()
    assert "| nearby_grid | tal | mAP@0.5 | 2 | 0, 1 |" in (tmp_path / "a" / "assigners_compare.md").read_text()
    # deterministic: a second render gives the same bytes
    assert main([*args, f"out={tmp_path / 'b'}"]) == 0
    for path in sorted((tmp_path / "a").rglob("*.*")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path.name


def test_api_runs_convert_like_offline_runs(offline_root):
    """A public-API run with the same data gives the same row as its offline folder."""
    spec = spec_of(SWEEP)
    path = next(p for p in find_offline_runs(offline_root) if read_wandb_file(p)["name"] == "nearby_grid-s1")
    raw = read_wandb_file(path)
    online = SimpleNamespace(id=raw["id"], name=raw["name"], group="assigners", project="yolozoo", state="finished",
                             config={**raw["config"], "_wandb": {}}, summary=dict(raw["summary"]),
                             scan_history=lambda: iter(raw["history"]), commit=None, created_at=raw["date"], url=None)
    a = runs_to_frame([offline_run(path)], spec).iloc[0]
    b = runs_to_frame([api_run(online)], spec).iloc[0]
    for col in ("status", "seed", "assigner", "trial", "mAP50", "mAP", "params", "pos_per_gt", "preset", "dataset"):
        assert a[col] == b[col], col
    assert a["history"] == b["history"] and a["assigner"] == "nearby_grid" and a["pos_per_gt"] == 5.0
    crashed = SimpleNamespace(**{**vars(online), "state": "crashed"})
    assert runs_to_frame([api_run(crashed)], spec).iloc[0]["status"] == "failed"
