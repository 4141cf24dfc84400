"""What a run record says it ran on: the code's commit (once per process) and the CPU's vector ISA."""

from __future__ import annotations

import yolozoo.environment as env

AVX2_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
AVX512 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512dq\n"


def test_the_commit_is_the_one_the_process_started_with(monkeypatch):
    heads = iter(["aaa", "bbb-dirty"])  # HEAD moves while a sweep worker trains
    monkeypatch.setattr(env, "git_commit", lambda path=None: next(heads))
    monkeypatch.setattr(env, "_CODE_COMMIT", [])
    assert env.environment()["git_commit"] == "aaa"
    assert env.environment()["git_commit"] == "aaa"  # not bbb-dirty: the code in memory is still aaa's


def test_cpu_info_names_the_widest_vector_isa():
    assert env.cpu_info(AVX2_EPYC)["isa"] == "AVX2" and env.cpu_info(AVX2_EPYC)["model"] == "AMD EPYC 7B13"
    assert env.cpu_info(AVX512)["isa"] == "AVX-512" and env.cpu_info(AVX512)["model"] == "AMD EPYC"
