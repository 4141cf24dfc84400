"""What a run record says it ran on: the code's commit (once per process) and the CPU's vector ISA."""

from __future__ import annotations

import pytest

import yolozoo.environment as env

AVX2_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
AVX512 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512dq\n"
ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512_bf16\n"


def test_the_commit_is_the_one_the_process_started_with(monkeypatch):
    heads = iter(["aaa", "bbb-dirty"])  # HEAD moves while a sweep worker trains
    monkeypatch.setattr(env, "git_commit", lambda path=None: next(heads))
    monkeypatch.setattr(env, "_CODE_COMMIT", [])
    assert env.environment()["git_commit"] == "aaa"
    assert env.environment()["git_commit"] == "aaa"  # not bbb-dirty: the code in memory is still aaa's


def test_cpu_info_names_the_widest_vector_isa():
    assert env.cpu_info(AVX2_EPYC)["isa"] == "AVX2" and env.cpu_info(AVX2_EPYC)["model"] == "AMD EPYC 7B13"
    assert env.cpu_info(AVX512)["isa"] == "AVX-512" and env.cpu_info(AVX512)["model"] == "AMD EPYC"


def test_a_timing_stamp_names_what_holds_the_process_below_its_cpu(monkeypatch):
    """An AVX2-only machine emulated on an AVX-512 one (kernels held to AVX2, one core by taskset) is stamped as such,
    not as the AVX-512 machine it ran on."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(env.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    cpu = {"model": "AMD EPYC", "isa": "AVX-512", "cores": 2, "torch_isa": "AVX512"}
    assert env.cpu_limits(cpu) == ""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setattr(env.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert env.cpu_limits({**cpu, "torch_isa": "AVX2"}) == " (PyTorch kernels AVX2, oneDNN AVX2), 1 of 2 cores"


def test_perf_sections_are_replaced_and_an_emulated_cpu_writes_its_own(tmp_path, monkeypatch):
    from yolozoo import perf_report

    path = tmp_path / "perf.md"
    monkeypatch.setattr(env, "cpu_limits", lambda cpu: "")
    perf_report.update_section("Default run", "first", "cmd", path)
    perf_report.update_section("Default run", "second", "cmd", path)
    monkeypatch.setattr(env, "cpu_limits", lambda cpu: ", 1 of 2 cores")
    perf_report.update_section("Default run", "slow", "cmd", path)
    text = path.read_text()
    assert "first" not in text and text.count("<!-- begin Default run -->") == 1 and "second" in text
    assert "<!-- begin Default run, slower CPU emulated -->\n## Default run, slower CPU emulated" in text
    assert text.index("second") < text.index("slow")


def test_describe_model_names_what_differs_from_the_dataclass_model():
    from yolozoo.perf_report import describe_model

    default = {"backbone": "mobilenetv2_100", "pretrained": "imagenet", "freeze": 4, "width": 0.25, "head_convs": 1}
    assert describe_model(default) == ("mobilenetv2_100 from imagenet, frozen to stride 4, width 0.25, 1 head conv "
                                       "per branch")
    assert describe_model({**default, "neck": "pan"}) == describe_model(default)
    assert describe_model({**default, "neck": "pan_sum", "head_convs": 0, "freeze": 0, "pretrained": "false"}) == (
        "mobilenetv2_100 from scratch, pan_sum neck, width 0.25, 0 head convs per branch")


def test_bfloat16_on_a_cpu_without_its_instructions_is_named_before_training(monkeypatch):
    """bf16 on an AVX2-only CPU trains at a fraction of float32's speed: the run says so, and what to set."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    slow = env.slow_precision("bf16-mixed", "cpu", AVX2_EPYC)
    assert slow.startswith("trainer.precision=bf16-mixed on the CPU: AMD EPYC 7B13 has no bfloat16 instructions")
    assert slow.endswith("Use trainer.precision=32-true on this machine.")
    assert env.slow_precision("16-mixed", "cpu", AVX2_EPYC)  # Lightning runs it as bfloat16 on a CPU
    assert env.slow_precision("bf16-mixed", "cpu", ZEN4) is None  # AVX-512 BF16
    assert env.slow_precision("bf16-mixed", "cpu", AVX512) is not None  # AVX-512 without BF16
    assert env.slow_precision("32-true", "cpu", AVX2_EPYC) is None
    assert env.slow_precision("bf16-mixed", "gpu", AVX2_EPYC) is None
    monkeypatch.setattr(env.torch.cuda, "is_available", lambda: True)
    assert env.slow_precision("bf16-mixed", "auto", AVX2_EPYC) is None  # auto picks the GPU
    monkeypatch.setattr(env.torch.cuda, "is_available", lambda: False)
    assert env.slow_precision("bf16-mixed", "auto", AVX2_EPYC) is not None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # an emulated AVX2-only machine
    assert "oneDNN is held to AVX2" in env.slow_precision("bf16-mixed", "cpu", ZEN4)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert env.slow_precision("bf16-mixed", "cpu", ZEN4) is None
    assert "AMD EPYC 7B13 has no bfloat16 instructions" in env.slow_precision("bf16-mixed", "cpu", AVX2_EPYC)


def test_a_run_warns_of_slow_bfloat16_before_it_trains(monkeypatch, smoke_overrides):
    from yolozoo import train as train_module
    from yolozoo.config import load_config

    monkeypatch.setattr(train_module, "slow_precision", lambda precision, accelerator: f"slow: {precision}")
    monkeypatch.setattr(train_module, "run_name", lambda cfg: (_ for _ in ()).throw(RuntimeError("stop here")))
    cfg = load_config([*smoke_overrides, "trainer.precision=bf16-mixed"])
    with pytest.warns(UserWarning, match="slow: bf16-mixed"), pytest.raises(RuntimeError, match="stop here"):
        train_module.train(cfg)
