"""Every entry point answers --help from the config dataclasses; user errors are one line, exit 2, with a hint."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from yolozoo.cli_help import config_keys, help_text
from yolozoo.config import Config, ConfigError, _valid_keys, load_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))


def test_the_scripts_are_found():
    assert {"run", "export", "predict", "val", "pretrain", "export_data"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_script_answers_help_with_exit_0(name, flag, capsys):
    module = importlib.import_module(f"bench.{name}")
    try:
        status = module.main([flag])
    except SystemExit as e:  # argparse scripts exit from parse_args
        status = e.code
    assert status in (0, None)
    out = capsys.readouterr().out
    assert "usage" in out.lower() or "python bench/" in out, out[:200]


def test_run_help_from_the_command_line_lists_keys_with_defaults_and_meanings():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--help"], capture_output=True, text=True,
                          cwd=ROOT, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "  model.width=0.25" in done.stdout and "neck/head channel multiplier" in done.stdout
    assert "  optim.lr=0.004" in done.stdout and "  wandb.group=null" in done.stdout


def test_help_covers_every_config_key_with_a_meaning():
    keys = config_keys()
    assert [k.key for k in keys] == _valid_keys(OmegaConf.structured(Config))
    assert not [k.key for k in keys if not k.meaning]
    defaults = {k.key: k.default for k in keys}
    assert defaults["data.img_size"] == Config().data.img_size and defaults["model.strides"] == [4, 8, 16]


def test_predict_help_lists_its_own_options_first(capsys):
    import bench.predict as predict

    assert predict.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.index("  conf=0.25") < out.index("Config keys") < out.index("  data.root=null")


def test_pretrain_help_is_generated_from_its_own_config(capsys):
    from yolozoo.pretrain import PretrainConfig

    text = help_text("doc", config_keys(PretrainConfig), with_config=False)
    assert "  model.backbone=" in text and "  val_fraction=0.1" in text and "held out for validation" in text
    assert "Config keys" not in text


@pytest.mark.parametrize("argv, message", [
    (["model.widht=0.5"], "unknown key 'model.widht'.*did you mean 'model.width'\\?"),
    (["assigner.name=atts"], "unknown assigner 'atts'.*did you mean 'atss'\\?"),
    (["model.family=yolov9"], "unknown model family 'yolov9'.*did you mean 'yolov8'\\?"),
])
def test_config_errors_name_the_key_with_a_did_you_mean(argv, message):
    with pytest.raises(ConfigError, match=message):
        load_config(argv)


@pytest.mark.parametrize("name, argv", [
    ("run", ["model.widht=1"]),
    ("export", ["model.widht=1"]),
    ("export_data", ["format=yolo", "out=x", "model.widht=1"]),
    ("perf_train", ["model.widht=1"]),
    ("perf_train", ["baseline=issue17"]),
    ("perf_train", ["baseline=eager"]),  # without trainer.compile there is nothing to compare
    ("perf_train", ["baseline=fp32"]),  # nor without bfloat16
    ("perf_train", ["trainer.precision=16-true"]),
    ("val", ["checkpoint=x.ckpt", "model.widht=1"]),
    ("predict", ["checkpoint=x.ckpt", "confidence=0.3"]),
])
def test_cli_user_error_is_one_line_exit_2(name, argv, capsys):
    module = importlib.import_module(f"bench.{name}")
    assert module.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    if name == "val":
        assert "x.ckpt: no such file" in err
    elif name == "predict":
        assert "unknown option 'confidence'" in err and "did you mean 'conf'?" in err
    elif argv == ["baseline=issue17"]:
        assert "baseline: expected dataclass, eager, fp32 or none, got 'issue17'" in err
    elif argv == ["baseline=eager"]:
        assert "baseline=eager compares trainer.compile=MODE with eager steps: set trainer.compile" in err
    elif argv == ["baseline=fp32"]:
        assert "baseline=fp32 compares bfloat16 autocast with float32 steps: set trainer.precision=bf16-mixed" in err
    elif argv == ["trainer.precision=16-true"]:
        assert "trainer.precision=16-true: this script times 32-true and bf16-mixed steps" in err
    else:
        assert "'model.widht'" in err and "did you mean 'model.width'?" in err, err
