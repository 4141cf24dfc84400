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


def test_jitter_on_device_moves_the_colour_jitter_from_the_loader_to_the_module():
    from yolozoo.train import build_datamodule, build_module

    loader = load_config(["data.color_jitter=0.2", "data.jitter_on=loader", "data.cache=false"])
    device = load_config(["data.color_jitter=0.2", "data.jitter_on=device", "data.cache=true"])
    assert build_datamodule(loader).color_jitter == 0.2 and build_datamodule(device).color_jitter == 0.0
    assert build_datamodule(device).cache and not build_datamodule(loader).cache
    assert build_module(loader, 10).batch_jitter == 0.0 and build_module(device, 10).batch_jitter == 0.2


@pytest.mark.parametrize("override, key", [
    ("trainer.batch_size=0", "trainer.batch_size"), ("optim.lr=-1", "optim.lr"), ("optim.lr=nan", "optim.lr"),
    ("trainer.max_epochs=0", "trainer.max_epochs"), ("data.img_size=0", "data.img_size"),
    ("data.num_train=0", "data.num_train"), ("eval.iou_thresh=0", "eval.iou_thresh"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches"), ("data.jitter_on=gpu", "data.jitter_on"),
])
def test_numeric_ranges_checked_up_front(override, key):
    with pytest.raises(ConfigError, match=rf"^{key} must be"):
        load_config([override])


def test_registry_and_timm_names_checked_up_front(tmp_path):
    with pytest.raises(ConfigError, match=r"model.backbone: 'nosuch' is not a timm model"):
        load_config(["model.backbone=nosuch"])
    assert load_config(["model.backbone=darknet_tiny"]).model.backbone == "darknet_tiny"  # yolozoo's own
    with pytest.raises(ConfigError, match=r"data.name: unknown dataset 'nope'; valid: .*digits"):
        load_config(["data.name=nope"])
    with pytest.raises(ConfigError, match="optim.name must be adamw or sgd"):
        load_config(["optim.name=adam"])
    with pytest.raises(ConfigError, match=r"model.pretrained: no such weights file .*nope.pth"):
        load_config([f"model.pretrained={tmp_path / 'nope.pth'}"])


def test_user_values_are_not_interpolated(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOZOO_SECRET", "hunter2")
    cfg = load_config(["name=${oc.env:YOLOZOO_SECRET}", "wandb.group=a${oc.env:YOLOZOO_SECRET}"])
    assert cfg.name == "${oc.env:YOLOZOO_SECRET}" and cfg.wandb.group == "a${oc.env:YOLOZOO_SECRET}"
    from yolozoo.config import to_dict

    assert "hunter2" not in str(to_dict(cfg))
    with pytest.raises(ConfigError, match="trainer.max_epochs"):  # not resolved into a number either
        load_config(["trainer.max_epochs=${oc.env:YOLOZOO_EPOCHS,3}"])
    path = tmp_path / "best.yaml"
    path.write_text("name: ${oc.env:YOLOZOO_SECRET}\n")
    assert load_config([f"config={path}"]).name == "${oc.env:YOLOZOO_SECRET}"


def test_run_names_are_one_path_component():
    from yolozoo.train import run_name, safe_name

    for bad in ["../../x", "a/b", "/abs/path", "..", ".hidden", "a\\b", "x\x00y", ""]:
        name = safe_name(bad)
        assert name and "/" not in name and "\\" not in name and not name.startswith(".") and "\x00" not in name
    assert safe_name("grid-0.25-s0") == "grid-0.25-s0"  # ordinary names are kept
    assert run_name(load_config(["name=../../x"])) == "_._.._x"


def test_redact_hides_passwords_only():
    from yolozoo.redact import redact

    assert redact("postgresql+psycopg2://user:pa:ss@host:5432/db") == "postgresql+psycopg2://user:***@host:5432/db"
    assert redact("error: storage=mysql://u:p@h/db failed") == "error: storage=mysql://u:***@h/db failed"
    for kept in ["sqlite:////tmp/results/sweeps.db", "postgresql://user@host/db", "key=value: 1"]:
        assert redact(kept) == kept


def test_preflight_names_the_unwritable_folder(tmp_path):
    from yolozoo.preflight import check_outputs

    (tmp_path / "afile").write_text("")  # a folder under a regular file cannot be made, even by root
    blocked = str(tmp_path / "afile" / "sub")
    ok = {"out_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"), "data.root": str(tmp_path)}
    check_outputs([load_config([f"{k}={v}" for k, v in ok.items()])], f"sqlite:///{tmp_path / 'r' / 's.db'}")
    assert (tmp_path / "runs").is_dir() and (tmp_path / "results").is_dir()
    for key in ("out_dir", "results_dir", "data.root"):
        cfg = load_config([f"{k}={v}" for k, v in {**ok, key: blocked}.items()])
        with pytest.raises(ConfigError, match=rf"^{key}={blocked}: cannot write"):
            check_outputs([cfg])
    with pytest.raises(ConfigError, match=r"^storage=sqlite:///.*afile/sub/s.db: cannot write"):
        check_outputs([], f"sqlite:///{blocked}/s.db")


def test_save_record_falls_back_next_to_the_checkpoints(tmp_path, capsys):
    import json

    from yolozoo.record import RunRecord, save_record

    record = RunRecord(name="../x", status="completed", started="2024-01-02T03:04:05+00:00",
                       finished="2024-01-02T03:05:05+00:00", config={}, metrics={"mAP": 0.5})
    (tmp_path / "afile").write_text("")
    path = save_record(record, tmp_path / "afile" / "results", tmp_path / "run")
    assert path.parent == tmp_path / "run" and json.loads(path.read_text())["metrics"] == {"mAP": 0.5}
    assert f"wrote it to {path}" in capsys.readouterr().err
    assert save_record(record, tmp_path / "results", tmp_path / "run").parent == tmp_path / "results" / "runs"
    assert save_record(record, tmp_path / "afile" / "r", tmp_path / "afile" / "run") is None
    assert "the record is lost" in capsys.readouterr().err


def test_a_record_from_before_a_key_existed_compares_equal_at_its_old_behaviour():
    """Records published before model.freeze, data.cache, ... existed lack those keys; a config holding the value
    that trains as before compares equal to them (resume, sweep record reuse), any other value does not."""
    import copy

    from yolozoo.config import to_dict
    from yolozoo.training_identity import training_config

    config = to_dict(load_config(["preset=smoke"]))
    old = copy.deepcopy(config)
    for key in ("trainer.max_time", "data.cache", "data.jitter_on", "model.freeze", "model.head_convs",
                "model.neck"):
        section, leaf = key.split(".")
        del old[section][leaf]
    assert training_config(config) == training_config(old)
    config["model"]["freeze"] = 4
    assert training_config(config) != training_config(old)
    config["model"]["freeze"], config["model"]["head_convs"] = 0, 1
    assert training_config(config) != training_config(old)
    config["model"]["head_convs"], config["model"]["neck"] = 2, "pan_sum"
    assert training_config(config) != training_config(old)
