"""Plug-ins: imports=[...], $YOLOZOO_IMPORTS and entry points register assigners usable in runs and sweeps."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from yolozoo.assigners import Priors, create_assigner, list_assigners
from yolozoo.config import ConfigError, load_config

SHRINK = {"preset": "smoke", "data.num_train": "32", "data.num_val": "16", "trainer.max_epochs": "1",
          "eval.latency_batches": "1"}


def _plugin(tmp_path: Path, monkeypatch) -> tuple[str, str]:
    """A fresh plug-in module on sys.path registering a uniquely named assigner; (module, assigner name)."""
    tag = uuid.uuid4().hex[:8]
    module, name = f"plugin_{tag}", f"probe_{tag}"
    (tmp_path / f"{module}.py").write_text(
        "from yolozoo.assigners import register_assigner\n"
        "from examples.nearest_k import NearestKAssigner\n\n\n"
        f"@register_assigner({name!r})\n"
        "class Probe(NearestKAssigner):\n"
        "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return module, name


def test_unknown_assigner_without_the_plugin(tmp_path, monkeypatch):
    module, name = _plugin(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match=f"unknown assigner '{name}'"):
        load_config([f"assigner.name={name}"])


def test_imports_key_registers_the_assigner(tmp_path, monkeypatch):
    module, name = _plugin(tmp_path, monkeypatch)
    cfg = load_config([f"imports=[{module}]", f"assigner.name={name}", "assigner.k=4"])
    assert cfg.assigner == {"name": name, "k": 4} and name in list_assigners()
    with pytest.raises(ConfigError, match=f"assigner '{name}' has no option 'kk'.*did you mean 'k'"):
        load_config([f"imports=[{module}]", f"assigner.name={name}", "assigner.kk=4"])


def test_environment_variable_registers_the_assigner(tmp_path, monkeypatch):
    module, name = _plugin(tmp_path, monkeypatch)
    monkeypatch.setenv("YOLOZOO_IMPORTS", f" {module} ,")
    assert load_config([f"assigner.name={name}"]).assigner.name == name


def test_entry_point_registers_the_assigner(tmp_path, monkeypatch):
    module, name = _plugin(tmp_path, monkeypatch)
    dist = tmp_path / f"my_plugin_{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: my-plugin-{module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[yolozoo.assigners]\nprobe = {module}\n")
    assert load_config([f"assigner.name={name}"]).assigner.name == name


def test_a_missing_module_is_one_clear_error():
    with pytest.raises(ConfigError, match="imports: cannot import plug-in module 'no_such_plugin_mod'"):
        load_config(["imports=[no_such_plugin_mod]"])


def test_example_assigner_gives_each_gt_its_k_nearest_priors():
    load_config(["imports=[examples.nearest_k]"])
    assigner = create_assigner("nearest_k", k=3)
    xs = torch.arange(8.0) * 8 + 4  # an 8 x 8 grid of stride-8 priors
    centers = torch.cartesian_prod(xs, xs).flip(-1)  # (x, y), row by row
    priors = Priors(centers, torch.full((64,), 8.0), torch.full((64, 2), 32.0), torch.zeros(64, dtype=torch.long))
    gt_boxes = torch.tensor([[[0.0, 0.0, 16.0, 16.0], [40.0, 40.0, 64.0, 64.0], [0, 0, 0, 0]]])
    gt_labels, gt_mask = torch.tensor([[2, 5, -1]]), torch.tensor([[True, True, False]])
    result = assigner(torch.rand(1, 64, 6), torch.zeros(1, 64, 4), priors, gt_labels, gt_boxes, gt_mask)
    assert result.fg_mask.sum() == 6
    for m, label in ((0, 2), (1, 5)):
        mine = result.fg_mask[0] & (result.gt_index[0] == m)
        centre = (gt_boxes[0, m, :2] + gt_boxes[0, m, 2:]) / 2
        want = (centers - centre).norm(dim=1).topk(3, largest=False).indices
        assert set(mine.nonzero().flatten().tolist()) == set(want.tolist())
        assert (result.labels[0][mine] == label).all() and (result.scores[0][mine].argmax(-1) == label).all()


def test_example_assigner_trains_and_runs_in_a_sweep(tmp_path):
    from yolozoo.sweep import SweepOptions, load_results, load_sweep, run_sweep

    path = tmp_path / "plug.yaml"
    path.write_text(yaml.safe_dump({"name": "plug", "description": "plug-in assigner", "table": "assigners",
                                    "axes": {"assigner.name": ["nearest_k", "tal"]}, "seeds": [0]}, sort_keys=False))
    cli = {**SHRINK, "imports": "[examples.nearest_k]", "out_dir": str(tmp_path / "runs"),
           "results_dir": str(tmp_path / "results"), "data.root": str(tmp_path / "data"), "wandb.mode": "disabled"}
    outcome = run_sweep(load_sweep(str(path), cli), cli, SweepOptions(progress_bar=False))
    assert outcome.ran == 2 and outcome.failed == 0
    df = load_results(results_dir=tmp_path / "results", sweep="plug")
    assert sorted(df["assigner.name"]) == ["nearest_k", "tal"] and (df["status"] == "completed").all()
    row = df[df["assigner.name"] == "nearest_k"].iloc[0]
    assert row["config"]["assigner"] == {"name": "nearest_k"} and row["config"]["imports"] == ["examples.nearest_k"]
    assert row["gt_without_pos"] == 0  # every GT got its k nearest priors
    assert "examples.nearest_k" in sys.modules
