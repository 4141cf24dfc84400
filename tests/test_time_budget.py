"""trainer.max_time: the budget's parsing and checks, the choice of the total steps, the schedule refit (on a
fake clock: nothing here depends on how fast the machine is), and tiny real runs that stop, validate and resume."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging
from torch.optim.lr_scheduler import OneCycleLR

from yolozoo import time_budget
from yolozoo.config import ConfigError, load_config, to_dict
from yolozoo.time_budget import BudgetError, TimeBudget, fit_total_steps, parse_duration, refit_one_cycle
from yolozoo.training_identity import training_config

LR, WARMUP = 0.004, 0.1


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("90s", 90), ("1.5h", 5400), ("600", 600), (" 2M ", 120),
                                           (".5m", 30), (45, 45)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5m", "0s", "0", "10 min", "1e3", "inf", "nan", "1h30m"])
def test_bad_durations_are_errors(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_config_checks_the_budget_before_any_work():
    assert load_config(["preset=smoke", "trainer.max_time=90s"]).trainer.max_time == "90s"
    assert load_config(["preset=smoke", "trainer.max_time=600"]).trainer.max_time == "600"
    for bad in ("10x", "0", "-1m"):
        with pytest.raises(ConfigError, match=rf"^trainer.max_time must be a duration .*got {bad}"):
            load_config(["preset=smoke", f"trainer.max_time={bad}"])
    with pytest.raises(ConfigError, match="trainer.max_time needs trainer.check_val_every_n_epoch=1"):
        load_config(["preset=smoke", "trainer.max_time=5m", "trainer.check_val_every_n_epoch=2"])


def test_only_the_default_run_has_a_budget_and_sweeps_train_their_own_batch():
    default = load_config([])
    assert default.trainer.max_time == "10m" and default.trainer.max_epochs == 5
    assert (default.data.num_train, default.data.img_size) == (12000, 128)
    assert load_config(["preset=smoke"]).trainer.max_time is None
    from yolozoo.search.space import list_searches, load_search
    from yolozoo.sweep.spec import list_sweeps, load_sweep

    for name in list_sweeps():  # points train the dataclass defaults' batch 16 unless their sweep file says
        spec = load_sweep(name)
        batch = spec.base.get("trainer.batch_size", 16)
        for point in spec.points()[:2]:
            cfg = load_config(spec.resolve(point.axis_overrides, {}))
            assert (cfg.trainer.max_time, cfg.trainer.batch_size) == (None, batch), name
        cfg = load_config(spec.resolve({}, {"trainer.max_time": "5m", "trainer.batch_size": "4"}))
        assert (cfg.trainer.max_time, cfg.trainer.batch_size) == ("5m", 4)
        assert load_config(spec.resolve({}, {"preset": "voc"})).trainer.batch_size == 64  # a chosen preset's holds
    assert load_sweep("widths").base["trainer.batch_size"] == 8
    for name in list_searches():
        space, _ = load_search(name)
        cfg = load_config(space.resolve({}, {}))
        assert (cfg.trainer.max_time, cfg.trainer.batch_size) == (None, space.base.get("trainer.batch_size", 16)), name


def test_no_budget_is_the_training_config_of_a_run_from_before_the_key():
    cfg = to_dict(load_config(["preset=smoke"]))
    older = {**cfg, "trainer": {k: v for k, v in cfg["trainer"].items() if k != "max_time"}}
    assert training_config(cfg) == training_config(older)
    assert training_config(to_dict(load_config(["preset=smoke", "trainer.max_time=5m"]))) != training_config(older)


def test_keys_added_later_at_their_old_behaviour_match_records_from_before_them():
    cfg = to_dict(load_config(["preset=smoke"]))
    older = {**cfg, "trainer": {k: v for k, v in cfg["trainer"].items() if k != "max_time"},
             "data": {k: v for k, v in cfg["data"].items() if k not in ("cache", "jitter_on")}}
    assert training_config(cfg) == training_config(older)
    for changed in ("data.cache=true", "data.jitter_on=device"):
        assert training_config(to_dict(load_config(["preset=smoke", changed]))) != training_config(older), changed


# -- choosing the total ------------------------------------------------------------------------------------------
def test_total_steps_fit_the_seconds_left_with_a_validation_per_epoch():
    # 10 steps/epoch, 1 s/step, a validation takes 2 steps' time; at step 5 of epoch 0 with 18 s left:
    # to step 19 in epoch 1 is 14 steps + 2 validations = 18 s (step 20 would be 19 s; epoch 2, 21 s)
    assert fit_total_steps(18, 1.0, 5, 0, 10, 50, 2) == 19
    assert fit_total_steps(9, 0.5, 5, 0, 10, 50, 2) == 19  # the same at 0.5 s/step in half the time
    assert fit_total_steps(1e9, 1.0, 5, 0, 10, 50, 2) == 50  # max_epochs caps it
    assert fit_total_steps(7, 1.0, 5, 0, 10, 50, 2) == 10  # exactly epoch 0, validated
    assert fit_total_steps(2.5, 1.0, 5, 0, 10, 50, 2) == 5  # no further step fits: stop now
    # entering an epoch costs its validation: 9 s end at step 10; 10 s buy step 11 (6 steps + 2 validations)
    assert fit_total_steps(9, 1.0, 5, 0, 10, 50, 2) == 10 and fit_total_steps(10, 1.0, 5, 0, 10, 50, 2) == 11
    assert fit_total_steps(18, 1.0, 15, 1, 10, 50, 2) == 29  # later epochs: only validations still ahead count


def _one_cycle(total: int, warmup: float = WARMUP) -> OneCycleLR:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=LR)
    return OneCycleLR(opt, max_lr=LR, total_steps=total, pct_start=warmup, cycle_momentum=False)


def _lrs(sched: OneCycleLR, steps: int) -> list[float]:
    """The learning rates of the next ``steps`` optimizer steps."""
    out = []
    for _ in range(steps):
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return out


def test_refit_is_the_schedule_of_the_new_total_from_the_current_step():
    old = _one_cycle(1000)
    before = _lrs(old, 50)
    new = refit_one_cycle(old, 600, WARMUP)
    after = _lrs(new, 550)
    reference = _lrs(_one_cycle(600), 600)
    assert before == _lrs(_one_cycle(1000), 50)  # the first steps followed the planned schedule
    assert after == pytest.approx(reference[50:], rel=1e-12, abs=0)
    peak = after.index(max(after)) + 50
    assert peak in (59, 60) and max(after) == pytest.approx(LR, rel=1e-3)  # warm-up: 10% of 600 steps
    assert after[-1] == pytest.approx(LR / 25 / 1e4, rel=1e-9)  # the last step is at the schedule's end
    assert new.state_dict()["total_steps"] == 600 and new.last_epoch == 600


# -- the callback, driven by a fake trainer on a fake clock --------------------------------------------------------
class Loop:
    """Just enough of Lightning's fit loop for :class:`TimeBudget`: steps with the schedule, a validation at each
    epoch end or at ``should_stop``; the clock is ``step_s`` per step and ``val_s`` per validation."""

    def __init__(self, steps_per_epoch: int, max_epochs: int, total: int, step_s: float = 1.0, val_s: float = 0.0):
        self.sched = _one_cycle(total)
        self.config = SimpleNamespace(scheduler=self.sched)
        self.trainer = SimpleNamespace(global_step=0, current_epoch=0, num_training_batches=steps_per_epoch,
                                       accumulate_grad_batches=1, max_epochs=max_epochs, max_steps=-1,
                                       should_stop=False, sanity_checking=False, is_global_zero=True,
                                       lr_scheduler_configs=[self.config],
                                       strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj))
        self.time, self.step_s, self.val_s, self.lrs, self.validated_at = 0.0, step_s, val_s, [], []

    def clock(self) -> float:
        return self.time

    def run(self, budget: TimeBudget) -> None:
        t, spe = self.trainer, self.trainer.num_training_batches
        budget.on_train_start(t, None)
        while not t.should_stop and t.current_epoch < t.max_epochs:
            for _ in range(spe):
                budget.on_train_batch_start(t, None, None, 0)
                self.lrs.append(self.config.scheduler.optimizer.param_groups[0]["lr"])
                self.config.scheduler.optimizer.step()
                self.config.scheduler.step()
                t.global_step += 1
                self.time += self.step_s(t.global_step) if callable(self.step_s) else self.step_s
                budget.on_train_batch_end(t, None, None, None, 0)
                if t.should_stop:
                    break
            budget.on_validation_start(t, None)
            self.time += self.val_s
            self.validated_at.append(t.global_step)
            budget.on_validation_end(t, None)
            t.current_epoch += 1


def budget(max_time_s: float, loop: Loop, **kw) -> TimeBudget:
    kw = {"started": 0.0, "warmup": WARMUP, "val_steps": 2, "end_steps": 5, "margin": 0.0, **kw}
    return TimeBudget(max_time_s, clock=loop.clock, **kw)


def test_the_budget_chooses_the_total_stops_there_validated_and_ends_the_schedule_there():
    loop = Loop(steps_per_epoch=200, max_epochs=5, total=1000, val_s=2.0)
    ema = EMAWeightAveraging(update_starting_at_step=100)
    b = budget(700, loop, ema=ema)
    loop.run(b)
    # decided at step 50 (10 skipped, 40 timed) with 50 s used: 700 - 50 - 5 (after training) = 645 s for
    # steps and validations: 4 validations (8 s) and 637 more steps -> 687
    assert b.plan["total_steps"] == 687 and b.plan["decided_at_step"] == 50
    assert b.plan["calibrated_s_per_step"] == 1.0 and b.plan["epochs"] == 3.435
    assert loop.trainer.global_step == 687 and loop.validated_at == [200, 400, 600, 687]  # the stop is validated
    assert loop.lrs[:50] == _lrs(_one_cycle(1000), 50)
    assert loop.lrs[50:] == pytest.approx(_lrs(_one_cycle(687), 687)[50:], rel=1e-12, abs=0)
    assert max(loop.lrs) == loop.lrs[68] and loop.lrs[-1] == pytest.approx(LR / 25 / 1e4, rel=1e-9)
    assert ema.update_starting_at_step == 68  # after the new total's warm-up
    # the run takes what was planned: 687 s of steps + 4 validations = 695 s, 5 s left for the timing pass
    assert loop.time == 695 and b.plan["planned_s"] == 700
    assert b.summary()["val_s_measured"] == [2.0] * 4 and b.summary()["max_time_s"] == 700


def test_steps_that_slow_down_are_timed_again_and_the_run_still_ends_in_time():
    loop = Loop(steps_per_epoch=200, max_epochs=5, total=1000, val_s=2.0)
    loop.step_s = lambda step: 1.0 if step <= 68 else 1.2  # the EMA's update costs 0.2 s a step from step 69
    ema = EMAWeightAveraging(update_starting_at_step=100)
    b = budget(700, loop, ema=ema)
    loop.run(b)
    # decided at step 50 at 1 s/step: 687 steps, EMA from 68, timing windows of 68 steps. Steps 51-118:
    # 18 x 1 + 50 x 1.2 = 78 s, 1.147 s/step -> 603. Steps 119-186 at 1.2 s/step: 68 + 118 x 1.2 = 209.6 s
    # used, 700 - 209.6 - 6 (after training) = 484.4 s -> 3 validations (epochs 0-2, 7.2 s) and
    # floor(484.4 / 1.2 - 6) = 397 more steps -> T = 583, where the run ends
    assert b.plan["calibrated_s_per_step"] == 1.0 and b.plan["decided_at_step"] == 50
    refits = b.plan["refits"]
    assert [r["at_step"] for r in refits][:2] == [118, 186]
    assert refits[0]["s_per_step"] == pytest.approx(78 / 68, rel=1e-4) and refits[1]["s_per_step"] == 1.2
    assert b.plan["total_steps"] == refits[-1]["total_steps"] == 583 == loop.trainer.global_step
    assert loop.validated_at[-1] == loop.trainer.global_step  # the stop is validated
    assert loop.time + 5 * 1.2 <= 700 and ema.update_starting_at_step == 68  # in time; the EMA had started
    assert loop.lrs[-1] == pytest.approx(LR / 25 / 1e4, rel=1e-9)  # on the last schedule's end
    steady = Loop(steps_per_epoch=200, max_epochs=5, total=1000, val_s=2.0)  # the same speed throughout
    b = budget(700, steady, ema=EMAWeightAveraging(update_starting_at_step=100))
    steady.run(b)
    assert "refits" not in b.plan and b.plan["total_steps"] == 687  # timings that agree change nothing


def test_a_refit_before_the_ema_starts_moves_its_start():
    loop = Loop(steps_per_epoch=200, max_epochs=5, total=1000, val_s=2.0)
    loop.step_s = lambda step: 1.0 if step <= 60 else 2.0  # slower from step 61, before the EMA's start
    ema = EMAWeightAveraging(update_starting_at_step=100)
    b = budget(1400, loop, ema=ema, every=40)
    loop.run(b)
    first = b.plan["refits"][0]
    assert first["at_step"] == 90 and first["total_steps"] < 1000
    assert ema.update_starting_at_step == int(WARMUP * first["total_steps"])  # moved again before it began
    assert loop.time + 5 * 2.0 <= 1400


def test_a_generous_budget_trains_max_epochs_unchanged():
    loop = Loop(steps_per_epoch=200, max_epochs=3, total=600)
    b = budget(10_000, loop)
    loop.run(b)
    assert b.plan["total_steps"] == 600 and loop.validated_at == [200, 400, 600]
    assert loop.lrs == _lrs(_one_cycle(600), 600)  # bitwise: the run without a budget


def test_a_resumed_run_keeps_the_stored_decision():
    first = Loop(steps_per_epoch=200, max_epochs=5, total=1000)
    b = budget(700, first)
    first.run(b)
    again = Loop(steps_per_epoch=200, max_epochs=5, total=1000, step_s=0.01)  # a much faster machine
    again.trainer.global_step, again.trainer.current_epoch = 400, 2
    ema = EMAWeightAveraging(update_starting_at_step=100)
    resumed = budget(700, again, ema=ema)
    resumed.load_state_dict(b.state_dict())
    again.run(resumed)
    assert resumed.plan == b.plan and again.trainer.global_step == b.plan["total_steps"]
    assert ema.update_starting_at_step == int(WARMUP * b.plan["total_steps"])


def test_a_used_up_budget_fails_and_short_ones_warn_but_train_what_they_hold():
    loop = Loop(steps_per_epoch=100, max_epochs=5, total=500)
    with pytest.raises(BudgetError, match=r"trainer.max_time=56s is used up: 50 s by step 50 at 1.000 s/step"):
        loop.run(budget(56, loop, label="56s"))  # 50 s used, 5 reserved after training, 1 left: no validation
    loop = Loop(steps_per_epoch=1000, max_epochs=5, total=5000, val_s=2.0)
    with pytest.warns(UserWarning) as caught:
        loop.run(budget(307, loop))  # 307 - 50 used - 5 after training - 2 for the validation: 250 more steps
    messages = [str(w.message) for w in caught]
    assert any("holds 300 steps: their warm-up" in m and "before step 50" in m for m in messages)  # 30 < 50
    assert any("holds 300 of the 1000 steps of one epoch" in m for m in messages)
    assert loop.validated_at == [300] and loop.time == 302 and loop.lrs[-1] == pytest.approx(LR / 25 / 1e4)


# -- tiny real runs ---------------------------------------------------------------------------------------------
class StepClock(Callback):
    """A clock that reads ``scale`` seconds per optimizer step (validation takes no time): the real run's budget
    decisions are the same on any machine."""

    def __init__(self, scale: float = 1.0):
        self.scale, self.trainer = scale, None

    def setup(self, trainer, pl_module, stage):
        self.trainer = trainer

    def teardown(self, trainer, pl_module, stage):
        self.trainer = None  # the next run's clock starts at 0 again

    def __call__(self) -> float:
        return 0.0 if self.trainer is None else self.scale * self.trainer.global_step


class Lrs(Callback):
    """The learning rate of every optimizer step, and the EMA's first step at the end."""

    def __init__(self):
        self.lrs, self.ema_start = [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module):
        (ema,) = [c for c in trainer.callbacks if isinstance(c, EMAWeightAveraging)]
        self.ema_start = ema.update_starting_at_step


class Interrupt(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 3 and batch_idx == 1:
            raise RuntimeError("interrupted")


# smoke (64 scenes: 4 steps per epoch; 32 val: 2 batches) for up to 8 epochs. On the step clock the
# decision comes at step 4 (the first epoch's last), 4 s used; 35 s less the 5% margin, 7 s after training
# (latency_batches 2 + 5) leave 22.25 s: 14 more steps and 5 validations of 1.5 s -> 18 steps.
BUDGETED = ["trainer.max_epochs=8", "trainer.max_time=35s", "optim.warmup=0.3", "eval.latency_batches=2",
            "trainer.channels_last=true",  # not timed: the whole and the interrupted run must train alike
            "name=budget"]


def use_clock(monkeypatch, clock: StepClock) -> StepClock:
    monkeypatch.setattr(time_budget, "now", clock)
    monkeypatch.setattr("yolozoo.train.now", clock)
    return clock


@pytest.fixture
def step_clock(monkeypatch):
    return use_clock(monkeypatch, StepClock())


def test_a_budgeted_run_stops_early_validated_and_records_its_budget(smoke_overrides, step_clock):
    from yolozoo.checkpoint import load_checkpoint
    from yolozoo.resume import find_unfinished
    from yolozoo.train import train

    lrs = Lrs()
    cfg = load_config([*smoke_overrides, *BUDGETED])
    record = train(cfg, callbacks=[step_clock, lrs])
    budget_record = record["budget"]
    assert budget_record["total_steps"] == 18 and budget_record["epochs"] == 4.5
    assert budget_record["max_time"] == "35s" and budget_record["max_time_s"] == 35
    assert budget_record["calibrated_s_per_step"] == 1.0 and budget_record["steps_per_epoch"] == 4
    assert record["metrics"]["epochs"] == 4.5
    # 5 epochs, the last one cut to 2 steps and validated: the final metrics are of the final weights
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3, 4, 5]
    assert "val/mAP" in record["history"][-1]
    assert record["metrics"]["mAP"] == pytest.approx(record["history"][-1]["val/mAP"])
    ckpt = load_checkpoint(Path(record["run_dir"]) / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 18 and ckpt["lr_schedulers"][0]["total_steps"] == 18
    # the schedule ends on its last value at step 18, with its warm-up over the first 30% of 18 steps
    assert len(lrs.lrs) == 18 and lrs.lrs[-1] == pytest.approx(LR / 25 / 1e4, rel=1e-9)
    assert lrs.lrs[4:] == pytest.approx(_lrs(_one_cycle(18, 0.3), 18)[4:], rel=1e-9)
    assert lrs.ema_start == int(0.3 * 18)
    assert find_unfinished(cfg, "budget") is None  # a run its budget ended is finished


def test_a_resumed_budgeted_run_keeps_its_total_and_ends_as_the_uninterrupted_one(smoke_overrides, step_clock,
                                                                                   monkeypatch):
    from yolozoo.resume import find_unfinished
    from yolozoo.train import train

    whole = train(load_config([*smoke_overrides, *BUDGETED, "name=whole"]), callbacks=[step_clock])
    cfg = load_config([*smoke_overrides, *BUDGETED])
    with pytest.raises(RuntimeError, match="interrupted"):
        train(cfg, callbacks=[step_clock, Interrupt()])
    assert find_unfinished(cfg, "budget") is not None
    # resumed on a machine 100x slower: a new decision would stop it at once; the stored one holds
    slow = use_clock(monkeypatch, StepClock(scale=100.0))
    resumed = train(load_config([*smoke_overrides, *BUDGETED, "resume=true"]), callbacks=[slow])
    assert resumed["resumed_from"] and resumed["budget"]["total_steps"] == whole["budget"]["total_steps"] == 18
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4, 5]
    assert resumed["metrics"]["mAP"] == whole["metrics"]["mAP"] and resumed["metrics"]["epochs"] == 4.5
    assert find_unfinished(cfg, "budget") is None


def test_the_command_line_reports_a_used_up_budget_in_one_line(monkeypatch, capsys, tmp_path):
    import yolozoo.train
    from yolozoo.run import main

    def used_up(cfg):
        raise BudgetError("trainer.max_time=1s is used up: 1 s by step 50 at 0.020 s/step, ...; raise trainer.max_time")

    monkeypatch.setattr(yolozoo.train, "train", used_up)
    assert main(["preset=smoke", f"out_dir={tmp_path}", f"results_dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("error: trainer.max_time=1s is used up: 1 s by step 50 at 0.020 s/step, ...; "
                           "raise trainer.max_time") and "Traceback" not in err
