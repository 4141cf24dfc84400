"""Sweep files: every shipped one builds, bad ones fail before any training, naming file and key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from yolozoo.config import load_config
from yolozoo.sweep.spec import TABLES, SweepError, find_sweep, list_sweeps, load_sweep

SHIPPED = ("assigners", "assigners_more", "backbones", "pretrained", "widths")


def write(tmp_path: Path, data: dict, name: str | None = None) -> Path:
    path = tmp_path / f"{name or data.get('name', 'grid')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def grid(**changes) -> dict:
    data = {"name": "grid", "description": "d", "table": "widths", "base": {"data.img_size": 64},
            "axes": {"model.width": [0.25, 0.5]}, "seeds": [0, 1], "baseline": {"model.width": 0.25}}
    data.update(changes)
    return data


def test_the_shipped_sweeps_are_there():
    assert set(SHIPPED) <= set(list_sweeps())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sweep_builds_on_digits_and_voc(name):
    spec = load_sweep(name)
    # auto seeds where the budget allows them (widths has none: its 2-hour budget)
    assert spec.name == name and spec.table in TABLES and len(spec.seeds) >= 3 and (spec.max_seeds or 3) >= 3
    assert spec.description and set(spec.baseline) <= set(spec.axes)
    points = spec.points()
    assert len(points) == math.prod(len(v) for v in spec.axes.values()) * len(spec.seeds)
    assert len({p.key for p in points}) == len(points)
    default = load_config({}).data
    for point in points:  # the budget changes how much a model trains, never how hard the data is
        cfg = load_config(spec.resolve(point.axis_overrides, {}))
        assert cfg.data.name == "digits" and cfg.data.num_train * cfg.trainer.max_epochs <= 12000
        for key in ("img_size", "num_val", "gen_seed", "distort", "scale", "translate", "mosaic"):
            assert cfg.data[key] == default[key], (name, key)
        for key, value in point.axis_overrides.items():  # the axes are what varies
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert str(node) == str(value), (name, key)
    voc = {"preset": "voc", "data.root": "/data/VOCdevkit"}
    spec = load_sweep(name, voc)
    cfg = load_config(spec.resolve(spec.points()[0].axis_overrides, voc))
    # the preset outranks the CPU defaults in base: the study's VOC setup
    assert cfg.data.name == "voc" and cfg.data.img_size == 416 and cfg.trainer.max_epochs == 100


def test_assigners_sweep_covers_the_studys_assigners():
    from yolozoo.assigners import list_assigners

    spec = load_sweep("assigners")
    names = {o["assigner.name"] for o in spec.axes["assigner"].values()}
    assert {"single_grid", "nearby_grid", "all_grid", "tal"} <= names <= set(list_assigners())
    assert spec.base["model.pretrained"] == "imagenet"  # as the study's ResNets were


def test_voc_backbones_sweep_is_the_studys_ladder():
    voc = {"preset": "voc", "data.root": "/data/VOCdevkit"}
    spec = load_sweep("sweeps/voc/backbones.yaml", voc)
    backbones = [load_config(spec.resolve(p.axis_overrides, voc)).model.backbone for p in spec.points([0])]
    assert backbones == ["resnet18", "resnet34", "resnet50", "darknet_small"]


def test_command_line_applies_to_every_point_and_axes_outrank_presets(tmp_path):
    spec = load_sweep(str(write(tmp_path, grid())), {"trainer.max_epochs": "3", "preset": "smoke"})
    for point in spec.points():
        cfg = load_config(spec.resolve(point.axis_overrides, {"trainer.max_epochs": "3", "preset": "smoke"}))
        assert cfg.trainer.max_epochs == 3 and cfg.model.width == point.labels["model.width"]
        assert cfg.data.img_size == 64  # smoke's value (base also said 64)
    assert [p.seed for p in spec.points()] == [0, 0, 1, 1]  # a whole seed first


def test_label_axes_link_overrides(tmp_path):
    path = write(tmp_path, grid(axes={"assigner": {"tal": {"assigner.name": "tal", "assigner.topk": 5},
                                                   "atss": {"assigner": {"name": "atss"}}}},
                                baseline={"assigner": "tal"}))
    spec = load_sweep(str(path))
    cfgs = {p.labels["assigner"]: load_config(spec.resolve(p.axis_overrides, {})) for p in spec.points()}
    assert cfgs["tal"].assigner.topk == 5 and cfgs["atss"].assigner.name == "atss"


def test_unknown_sweep_name_lists_the_valid_ones():
    with pytest.raises(SweepError, match=r"unknown sweep 'assignrs'; valid: .*assigners"):
        find_sweep("assignrs")


@pytest.mark.parametrize("changes, message", [
    ({"axis": {}}, r"unknown key 'axis'; valid keys: name, description"),
    ({"name": "other"}, r"name must equal the file stem 'grid', got 'other'"),
    ({"base": {"model.widht": 0.5}}, r"base: unknown key 'model.widht'; valid keys: .*model.width"),
    ({"axes": {"model.width": [0.25, "wide"]}}, r"axis 'model.width' label 'wide': .*model.width"),
    ({"axes": {"assigner": {"tal": {"assigner.nme": "tal"}}}, "baseline": {}},
     r"axis 'assigner' label 'tal': assigner: assigner 'tal' has no option 'nme'"),
    ({"axes": {"seed": [1, 2]}, "baseline": {}}, r"axis 'seed' would shadow a result column.*seeds"),
    ({"axes": {"model.width": []}}, r"axes.model.width: List should have at least 1 item"),
    ({"base": {"seed": 3}}, r"base: 'seed' is set per point by the sweep runner"),
    ({"seeds": [0, 0]}, r"seeds: repeats a value: \[0, 0\]"),
    ({"baseline": {"model.width": 0.3}}, r"baseline model.width=0.3 is not one of \[0.25, 0.5\]"),
    ({"table": "sizes"}, r"table: Input should be 'assigners', 'backbones', 'widths' or 'pretrained'"),
])
def test_bad_sweep_file_fails_naming_file_and_key(tmp_path, changes, message):
    path = write(tmp_path, grid(**changes), name="grid")
    with pytest.raises(SweepError, match=message) as err:
        load_sweep(str(path))
    assert str(path) in str(err.value)


def test_bad_command_line_override_fails_before_training(tmp_path):
    path = write(tmp_path, grid())
    with pytest.raises(SweepError, match=r"command line: unknown key 'trainer.max_epoch'"):
        load_sweep(str(path), {"trainer.max_epoch": "3"})
    with pytest.raises(SweepError, match=r"command line: 'seed' is set per point"):
        load_sweep(str(path), {"seed": "1"})


def test_run_entry_point_rejects_bad_sweeps(tmp_path, capsys):
    import bench.run as run

    assert run.main(["sweep=no_such_sweep"]) == 2
    assert "unknown sweep 'no_such_sweep'" in capsys.readouterr().err
    path = write(tmp_path, grid(base={"model.widht": 1}))
    assert run.main([f"sweep={path}", f"results_dir={tmp_path}"]) == 2
    assert "unknown key 'model.widht'" in capsys.readouterr().err
    assert run.main([f"sweep={write(tmp_path, grid())}", "workers=0"]) == 2
    assert "command line: workers: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert not (tmp_path / "sweeps.db").exists()  # nothing started
    assert run.main(["--help"]) == 0
    assert "1 when a sweep ends with any failed point" in capsys.readouterr().out
