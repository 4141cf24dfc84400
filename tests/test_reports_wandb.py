"""Reports from W&B runs through its public API (``wandb.Api``, mocked here: no network), and the sources' errors."""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace

import pytest
import yaml
from test_reports_helpers import md_table, spec_of

from yolozoo.analysis import load_results
from yolozoo.analysis.render import main
from yolozoo.config import load_config, to_dict

wandb = pytest.importorskip("wandb")

SWEEP = {"name": "assigners", "table": "assigners", "seeds": [0, 1, 2], "baseline": {"assigner": "tal"},
         "axes": {"assigner": {"tal": {"assigner.name": "tal"},
                               "nearby_grid": {"assigner.name": "nearby_grid", "model.head": "anchor"}}}}
# (assigner, seed) -> final (mAP50, mAP), or None for a run that failed; tal seed 2 never ran
RUNS = {("tal", 0): (0.50, 0.30), ("tal", 1): (0.54, 0.33), ("nearby_grid", 0): (0.61, 0.37),
        ("nearby_grid", 1): (0.65, 0.40), ("nearby_grid", 2): None}


def api_run(assigner: str, seed: int, final, state: str | None = None, created: str = "2026-11-25T10:00:00Z"):
    """A stand-in for ``wandb.apis.public.Run`` as ``yolozoo.train``'s Lightning logger leaves it."""
    head = "anchor" if assigner == "nearby_grid" else "free"
    cfg = to_dict(load_config(["preset=smoke", f"assigner.name={assigner}", f"model.head={head}", f"seed={seed}"]))
    m50, m = final or (0.2, 0.1)
    steps = []
    for epoch in range(3):  # Lightning: 0-based epoch; per-step, train-epoch and val scalars in separate steps
        steps += [{"train/loss_step": 3.0 - epoch, "trainer/global_step": 10 * epoch},
                  {"train/loss_epoch": 3.0 - epoch, "train/assign/pos_per_gt_mean": 4.0 + seed,
                   "train/assign/gt_without_pos": 0.05, "epoch": epoch},
                  {"val/mAP50": m50 * (epoch + 1) / 3, "val/mAP": m * (epoch + 1) / 3, "epoch": epoch}]
    summary = {} if final is None else {"mAP50": m50, "mAP": m, "params": 1.5e6, "flops": 0.2e9, "latency_ms": 3.0,
                                        "epochs": 3, "best_epoch": 3}
    return SimpleNamespace(id=f"{assigner}-{seed}", name=f"{assigner}-s{seed}", group="assigners",
                           state=state or ("finished" if final else "failed"), config={**cfg, "_wandb": {"x": 1}},
                           summary=summary, scan_history=lambda: iter(steps), commit="abc123", created_at=created,
                           url=f"https://wandb.ai/team/yolozoo/runs/{assigner}-{seed}")


@pytest.fixture
def fake_api(monkeypatch):
    """``wandb.Api`` answering with ``fake_api.runs``; ``fake_api.calls`` records (path, filters)."""
    state = SimpleNamespace(runs=[api_run(a, s, f) for (a, s), f in RUNS.items()], calls=[], error=None)

    class Api:
        def runs(self, path, filters=None):
            state.calls.append((path, filters))
            if state.error:
                raise state.error
            return [r for r in state.runs if r.group == (filters or {}).get("group", r.group)]

    monkeypatch.setattr(wandb, "Api", Api)
    return state


def test_render_from_the_wandb_api(fake_api, tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "assigners.yaml").write_text(yaml.safe_dump(SWEEP))
    args = ["sweep=assigners", "source=wandb", "storage=team/yolozoo", f"sweeps_dir={tmp_path / 'sweeps'}",
            "compare=assigners:nearby_grid,tal"]
    assert main([*args, f"out={tmp_path / 'a'}"]) == 0
    assert fake_api.calls[0] == ("team/yolozoo", {"group": "assigners"})
    text = (tmp_path / "a" / "assigners.md").read_text()
    table = md_table(text)
    for name in ("tal", "nearby_grid"):
        done = [v for (a, _), v in RUNS.items() if a == name and v]
        for header, i in (("mAP@0.5", 0), ("mAP@0.5:0.95", 1)):
            vals = [d[i] for d in done]
            assert table[name][header].strip("*") == f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"
    assert table["tal"]["n"] == "2/3" and table["tal"]["Notes"] == "1 missing"
    assert table["nearby_grid"]["n"] == "2/3" and table["nearby_grid"]["Notes"] == "1 failed"
    assert table["nearby_grid"]["Δ mAP@0.5"] == f"{0.63 - 0.52:+.3f}"
    assert "nearby_grid: seed 2: W&amp;B state failed" in text  # Markdown: & escaped
    assert "preset smoke" in text and "epochs 2" in text
    assert "commit abc123" in text
    assert (tmp_path / "a" / "plots" / "assigners_curves.svg").is_file()
    assert (tmp_path / "a" / "plots" / "assigners_assignment.svg").is_file()  # statistics from the history
    assert "| nearby_grid | tal | mAP@0.5 | 2 | 0, 1 |" in (tmp_path / "a" / "assigners_compare.md").read_text()
    assert main([*args, f"out={tmp_path / 'b'}"]) == 0  # deterministic: a second render gives the same bytes
    for path in sorted((tmp_path / "a").rglob("*.*")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path.name


def test_wandb_runs_become_one_row_per_point_and_seed(fake_api):
    # a retry: tal seed 0 crashed first, then finished; another sweep's run in the project is not read
    fake_api.runs += [api_run("tal", 0, (0.1, 0.05), state="crashed", created="2026-11-25T09:00:00Z"),
                      SimpleNamespace(**{**vars(api_run("tal", 2, (0.9, 0.5))), "group": "widths"})]
    df = load_results(spec_of(SWEEP), "wandb")
    assert fake_api.calls == [("yolozoo", {"group": "assigners"})]  # the default project
    assert list(zip(df["row"], df["seed"])) == [("tal", 0), ("tal", 1), ("nearby_grid", 0), ("nearby_grid", 1),
                                                ("nearby_grid", 2)]
    tal0 = df.iloc[0]
    assert tal0["status"] == "completed" and tal0["mAP50"] == 0.50  # the completed run wins over the crashed one
    assert [h["epoch"] for h in tal0["history"]] == [1, 2, 3]  # per epoch, 1-based, as a run record's history
    assert tal0["history"][0] == {"epoch": 1, "train/loss": 3.0, "train/assign/pos_per_gt_mean": 4.0,
                                  "train/assign/gt_without_pos": 0.05, "val/mAP50": pytest.approx(0.5 / 3),
                                  "val/mAP": pytest.approx(0.1)}
    assert tal0["pos_per_gt"] == 4.0 and tal0["preset"] == "smoke" and tal0["dataset"] == "digits"
    assert "_wandb" not in tal0["config"] and tal0["config"]["assigner"]["name"] == "tal"
    failed = df.iloc[4]
    assert failed["status"] == "failed" and failed["reason"] == "W&B state failed" and math.isnan(failed["mAP50"])


def test_wandb_api_error_names_the_project(fake_api, tmp_path, capsys):
    (tmp_path / "assigners.yaml").write_text(yaml.safe_dump(SWEEP))
    fake_api.error = ValueError("Could not find project yolozoo")
    assert main(["source=wandb", "storage=team/yolozoo", f"sweeps_dir={tmp_path}", f"out={tmp_path / 'out'}"]) == 2
    assert "reading W&B project 'team/yolozoo' failed: ValueError: Could not find project" in capsys.readouterr().err


def test_offline_wandb_source_is_gone_and_says_what_to_do(tmp_path, capsys):
    (tmp_path / "assigners.yaml").write_text(yaml.safe_dump(SWEEP))
    assert main(["source=wandb_offline", f"sweeps_dir={tmp_path}", f"out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "unknown source 'wandb_offline'; valid: records, store, wandb" in err
    assert "wandb sync" in err and "source=wandb" in err
    assert main(["source=nope", f"sweeps_dir={tmp_path}", f"out={tmp_path / 'out'}"]) == 2
    assert "wandb sync" not in capsys.readouterr().err
