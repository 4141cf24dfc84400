"""bench/perf_profile.py's split of real steps at Lightning's hooks."""

import pytest

from bench.perf_profile import REAL, StepClock


def test_real_steps_split_at_the_hooks_from_the_same_steps():
    clock = StepClock()
    # step i: starts at 10 i; forward 4 ms, backward 3, optimizer and batch end 2, then 1 until the next start
    for i in range(8):
        t = 10.0 * i
        clock.steps.append({"start": t, "forward": t + 4, "backward": t + 7, "end": t + 9})
    clock.steps[5]["forward"] += 50  # one slow forward: the medians ignore it
    segments, whole = clock.split(warmup=3)
    assert list(segments) == REAL
    assert [segments[k] for k in REAL] == pytest.approx([4, 3, 2, 1]) and whole == pytest.approx(10)
