import pytest

from yolozoo.config import ConfigError, list_presets, load_config


def test_defaults_and_overrides():
    cfg = load_config(["trainer.max_epochs=3", "model.width=0.75", "assigner.topk=13", "data.name=voc"])
    assert cfg.trainer.max_epochs == 3 and cfg.model.width == 0.75
    assert cfg.assigner == {"name": "tal", "topk": 13} and cfg.data.name == "voc"
    assert cfg.preset == "default"


def test_presets_all_load():
    assert {"default", "smoke", "voc"} <= set(list_presets())
    for name in list_presets():
        assert load_config([f"preset={name}"]).preset == name
    assert load_config(["preset=smoke"]).data.img_size == 64


def test_override_beats_preset():
    assert load_config(["preset=smoke", "data.img_size=96"]).data.img_size == 96


def test_unknown_key_names_it_and_lists_valid():
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.max_epoch'.*trainer.max_epochs"):
        load_config(["trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match=r"unknown key 'bogus'"):
        load_config(["bogus=1"])


def test_wrong_type_and_bad_values():
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        load_config(["trainer.max_epochs=three"])
    with pytest.raises(ConfigError, match="multiple of 32"):
        load_config(["data.img_size=100"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(["trainer.max_epochs"])


def test_assigner_name_and_options_checked():
    with pytest.raises(ConfigError, match=r"unknown assigner 'nope'; valid: .*tal"):
        load_config(["assigner.name=nope"])
    with pytest.raises(ConfigError, match=r"no option 'tpk'; valid: topk"):
        load_config(["assigner.tpk=3"])


def test_unknown_preset_lists_valid():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; valid: .*smoke"):
        load_config(["preset=nope"])


def test_config_is_read_only():
    cfg = load_config([])
    from omegaconf.errors import ReadonlyConfigError

    with pytest.raises(ReadonlyConfigError):
        cfg.trainer.max_epochs = 5


def test_num_workers_unset_follows_the_cpu_count(monkeypatch):
    from yolozoo import datamodule
    from yolozoo.train import build_datamodule

    for cpus, expected in [(1, 0), (2, 0), (4, 2), (16, 8), (64, 8)]:
        monkeypatch.setattr(datamodule.os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)))
        assert build_datamodule(load_config([])).num_workers == expected
        assert build_datamodule(load_config(["data.num_workers=3"])).num_workers == 3
