"""Fault cases, each run as real processes, and ``reports/reliability.md`` listing what happened.

    python bench/reliability.py [--only NAME,NAME] [--out reports/reliability.md]

Every case starts ``bench/run.py`` (a single run, a sweep, or ``workers=N`` sweep workers) at
smoke size, injects one fault (an unwritable folder, a bad value, a path-traversal name,
Ctrl-C, SIGTERM, kill -9, workers racing on one store) and reads back what it left: the exit
status, the first error line, the store's trials, the files written. Each case's outcome is

- ``recovered``: the work is done (or resumes with nothing trained lost) after the fault;
- ``clear error``: the command stopped before training, exit 2, one line naming the key or file;
- ``lost``: anything else: a traceback, trained results missing, a wrong exit status.

``tests/test_faults.py`` runs the same cases (the long ones under ``nox -s faults``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "smoke", "data.num_train": "32", "data.num_val": "16", "trainer.max_epochs": "1",
        "wandb.mode": "disabled", "eval.latency_batches": "1"}
LONG = {**TINY, "trainer.max_epochs": "6"}  # still training when a signal arrives after epoch 1


@dataclass
class Observed:
    """What a case saw: ``outcome`` (recovered / clear error / lost) and the evidence."""

    outcome: str
    detail: str
    code: int | None = None
    output: str = ""
    extra: dict = field(default_factory=dict)


class Proc:
    """``bench/run.py ARGS`` (or another ``script``) in its own process; its stdout+stderr collected by a thread."""

    def __init__(self, args: list[str], cwd: Path, script: str = "run.py"):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled",
               "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen([sys.executable, str(ROOT / "bench" / script), *args], cwd=cwd, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True,  # SIGINT at its default, as under a terminal,
                                  # also from a background job (which starts with SIGINT ignored)
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 300) -> bool:
        """Wait until ``text`` appears in the output; False if the process ended or the time ran out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.p.poll() is not None:
                self.reader.join(5)
                return text in self.output
            time.sleep(0.1)
        return False

    def finish(self, timeout: float = 600) -> int:
        try:
            code = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            code = self.p.wait()
        self.reader.join(5)
        return code


def run(args: list[str], cwd: Path, timeout: float = 600, script: str = "run.py") -> tuple[int, str]:
    proc = Proc(args, cwd, script)
    return proc.finish(timeout), proc.output


def overrides(tmp: Path, base: dict[str, str] | None = None, **more: str) -> list[str]:
    where = {"out_dir": str(tmp / "runs"), "results_dir": str(tmp / "results"), "data.root": str(tmp / "data")}
    return [f"{k}={v}" for k, v in {**(base or TINY), **where, **more}.items()]


def sweep_file(tmp: Path, axes: dict, name: str = "grid", seeds: tuple = (0,)) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": "fault case", "table": "widths", "axes": axes,
                                    "seeds": list(seeds)}, sort_keys=False))
    return path


def trials(url: str) -> list:
    """The trials of the one sweep study in ``url``."""
    import optuna

    from yolozoo.sweep.store import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(url)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def states(url: str) -> list[str]:
    return [t.state.name for t in trials(url) if t.params]


def clear_error(code: int, output: str, names: str) -> Observed:
    """Exit 2 with an ``error:`` line naming ``names``, no traceback, nothing trained."""
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    ok = code == 2 and len(lines) == 1 and names in lines[0] and "Traceback" not in output
    return Observed("clear error" if ok else "lost", lines[0] if lines else output.strip()[-300:], code, output)


def sqlite_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'results' / 'sweeps.db'}"


# --------------------------------------------------------------------------- the cases
def unwritable_results_dir(tmp: Path) -> Observed:
    """results_dir under a regular file (root ignores chmod): refused before training."""
    (tmp / "afile").write_text("")
    code, out = run(overrides(tmp, results_dir=str(tmp / "afile" / "sub")), tmp)
    obs = clear_error(code, out, "results_dir")
    if (tmp / "runs").exists() and any((tmp / "runs").iterdir()):
        obs.outcome = "lost"
    return obs


def record_blocked_after_training(tmp: Path) -> Observed:
    """results_dir/runs is a file: the record goes next to the checkpoints, and the message says where."""
    (tmp / "results").mkdir()
    (tmp / "results" / "runs").write_text("")
    code, out = run(overrides(tmp), tmp)
    found = list((tmp / "runs").glob("*/*.json"))
    metrics = json.loads(found[0].read_text()).get("metrics", {}) if found else {}
    ok = code == 0 and found and "mAP50" in metrics and str(found[0]) in out
    return Observed("recovered" if ok else "lost", f"record written to {found[0].relative_to(tmp)}" if found else
                    out.strip()[-300:], code, out, {"fallback": found})


def traversal_name(tmp: Path) -> Observed:
    """name=../../../../escape: every file stays under out_dir / results_dir."""
    work = tmp / "a" / "b"
    work.mkdir(parents=True)
    code, out = run(overrides(work, name="../../../../escape"), work)
    outside = [p for p in tmp.rglob("*escape*") if not p.is_relative_to(work / "runs")
               and not p.is_relative_to(work / "results")]
    records = list((work / "results" / "runs").glob("*.json"))
    ok = code == 0 and not outside and len(records) == 1
    detail = f"run folder and record named {json.loads(records[0].read_text())['name']!r}" if records else ""
    return Observed("recovered" if ok else "lost", detail or f"outside: {outside}", code, out,
                    {"outside": outside, "records": records})


def bad_values(tmp: Path) -> Observed:
    """trainer.batch_size=0, optim.lr=-1, trainer.max_epochs=0, data.img_size=0, model.backbone=nosuch: exit 2."""
    seen = []
    for key, value in [("trainer.batch_size", "0"), ("optim.lr", "-1"), ("trainer.max_epochs", "0"),
                       ("data.img_size", "0"), ("model.backbone", "nosuch")]:
        obs = clear_error(*run(overrides(tmp, **{key: value}), tmp), key)
        if obs.outcome != "clear error":
            return obs
        seen.append(obs.detail)
    return Observed("clear error", seen[0], 2, "\n".join(seen), {"errors": seen})


def bad_axis_value(tmp: Path) -> Observed:
    """A sweep axis value that cannot run (model.backbone=nosuch, data.img_size=0): refused before any point."""
    path = sweep_file(tmp, {"model.backbone": ["lcnet_075", "nosuch"]})
    code, out = run([f"sweep={path}", *overrides(tmp)], tmp)
    obs = clear_error(code, out, "nosuch")
    path = sweep_file(tmp, {"data.img_size": [64, 0]}, name="sizes")
    code2, out2 = run([f"sweep={path}", *overrides(tmp)], tmp)
    obs2 = clear_error(code2, out2, "data.img_size")
    trained = (tmp / "runs").exists() and any((tmp / "runs").iterdir())
    if obs.outcome != "clear error" or obs2.outcome != "clear error" or trained:
        return obs if obs.outcome != "clear error" else obs2
    return obs


def unwritable_storage(tmp: Path) -> Observed:
    """storage=sqlite:///<file>/sub/s.db, and a digits cache under a file: exit 2, one line each."""
    (tmp / "afile").write_text("")
    path = sweep_file(tmp, {"model.width": [0.25]})
    obs = clear_error(*run([f"sweep={path}", f"storage=sqlite:///{tmp / 'afile' / 'sub' / 's.db'}",
                            *overrides(tmp)], tmp), "storage")
    if obs.outcome != "clear error":
        return obs
    cache = clear_error(*run(overrides(tmp, **{"data.root": str(tmp / "afile" / "data")}), tmp), "data.root")
    return cache if cache.outcome != "clear error" else Observed("clear error", f"{obs.detail} / {cache.detail}", 2)


def password_redacted(tmp: Path) -> Observed:
    """A PostgreSQL storage URL's password is never printed."""
    path = sweep_file(tmp, {"model.width": [0.25]})
    code, out = run([f"sweep={path}", "storage=postgresql+psycopg2://user:s3cret@127.0.0.1:1/db",
                     *overrides(tmp)], tmp)
    ok = "s3cret" not in out and code == 2 and "user:***@" in out and "Traceback" not in out
    line = next((x for x in out.splitlines() if x.startswith("error:")), out.strip()[-200:])
    return Observed("clear error" if ok else "lost", line[:200], code, out)


def sigint_single_run(tmp: Path) -> Observed:
    """Ctrl-C mid-training of a single run: exit 130."""
    proc = Proc(overrides(tmp, LONG), tmp)
    started = proc.wait_for("epoch 1/")
    proc.p.send_signal(signal.SIGINT)
    code = proc.finish()
    ok = started and code == 130
    return Observed("recovered" if ok else "lost", f"exit {code} (nothing to resume: a single run)", code,
                    proc.output)


def _signal_sweep(tmp: Path, signum: int) -> tuple[Proc, int, str, Path]:
    path = sweep_file(tmp, {"model.width": [0.25]})
    proc = Proc([f"sweep={path}", *overrides(tmp, LONG)], tmp)
    started = proc.wait_for("epoch 1/")
    proc.p.send_signal(signum)
    code = proc.finish()
    return proc, code if started else -999, sqlite_url(tmp), path


def sigint_sweep(tmp: Path) -> Observed:
    """Ctrl-C mid-point: exit 130, the trial FAILED as interrupted, re-run at once by the next start."""
    proc, code, url, path = _signal_sweep(tmp, signal.SIGINT)
    (first,) = [t for t in trials(url) if t.params]
    start = time.monotonic()
    again, out = run([f"sweep={path}", *overrides(tmp, LONG)], tmp)  # default heartbeat: 60 s, stale after 180 s
    waited = time.monotonic() - start
    after = states(url)
    ok = (code == 130 and first.state.name == "FAIL" and "interrupted" in (first.user_attrs.get("reason") or "")
          and again == 0 and after.count("COMPLETE") == 1 and waited < 170)
    return Observed("recovered" if ok else "lost",
                    f"exit {code}; trial {first.state.name} ({first.user_attrs.get('reason')}); next start re-ran it "
                    f"in {waited:.0f} s: {after}", code, proc.output + out, {"first": first, "after": after})


def sigterm_sweep(tmp: Path) -> Observed:
    """SIGTERM mid-point: exit 143, the trial stays RUNNING and is re-run once its heartbeat goes stale."""
    proc, code, url, path = _signal_sweep(tmp, signal.SIGTERM)
    (first,) = [t for t in trials(url) if t.params]
    # heartbeat=1: a trial silent for 3 s counts as dead (the worker above used the default, 60 s)
    again, out = run([f"sweep={path}", "heartbeat=1", *overrides(tmp, LONG)], tmp)
    after = states(url)
    ok = code == 143 and first.state.name == "RUNNING" and again == 0 and after.count("COMPLETE") == 1
    return Observed("recovered" if ok else "lost", f"exit {code}; trial left {first.state.name}; the next start "
                    f"re-ran it: {after}", code, proc.output + out, {"first": first, "after": after})


def kill9_worker(tmp: Path) -> Observed:
    """kill -9 of one of workers=2 mid-point: the other takes its point over; the parent prints the table, exit 0."""
    path = sweep_file(tmp, {"model.width": [0.25, 0.5]})
    proc = Proc([f"sweep={path}", "workers=2", "heartbeat=1", *overrides(tmp, {**TINY, "trainer.max_epochs": "3"})],
                tmp)
    started = proc.wait_for("epoch 1/")
    children = subprocess.run(["pgrep", "-P", str(proc.p.pid)], capture_output=True, text=True).stdout.split()
    if children:
        os.kill(int(children[0]), signal.SIGKILL)
    code = proc.finish()
    after = states(sqlite_url(tmp))
    ok = started and children and code == 0 and after.count("COMPLETE") == 2 and "status" in proc.output
    return Observed("recovered" if ok else "lost", f"parent exit {code}, table printed: {'status' in proc.output}; "
                    f"trials {after}", code, proc.output, {"after": after})


def three_workers(tmp: Path, storage: str | None = None) -> Observed:
    """workers=3 on one store: every point trained once, exit 0."""
    path = sweep_file(tmp, {"model.width": [0.25, 0.5, 0.75]}, name=f"w{os.getpid()}x{int(time.time())}")
    extra = [f"storage={storage}"] if storage else []
    code, out = run([f"sweep={path}", "workers=3", *extra, *overrides(tmp)], tmp)
    url = storage or sqlite_url(tmp)
    import optuna

    from yolozoo.sweep.store import open_storage

    study = [s for s in optuna.get_all_study_summaries(open_storage(url)) if s.user_attrs.get("sweep") == path.stem]
    done = [t.params.get("model.width") for s in study
            for t in optuna.load_study(study_name=s.study_name, storage=open_storage(url)).get_trials()
            if t.state.name == "COMPLETE"]
    ok = code == 0 and sorted(done) == [0.25, 0.5, 0.75]
    return Observed("recovered" if ok else "lost", f"exit {code}; completed points {sorted(done)}", code, out)


def three_workers_postgres(tmp: Path) -> Observed | None:
    url = os.environ.get("YOLOZOO_TEST_PG_URL")
    return three_workers(tmp, url) if url else None


class _CreatesFile:
    """Unpickling this calls ``open(path, "w")``: a checkpoint that runs code when loaded unsafely."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def malicious_checkpoint(tmp: Path) -> Observed:
    """A checkpoint whose unpickling would create a file: export, predict and val refuse it; nothing runs."""
    import torch

    marker, path = tmp / "pwned.txt", tmp / "evil.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1)}, "payload": _CreatesFile(marker)}, path)
    seen = []
    for script in ("export.py", "predict.py", "val.py"):
        code, out = run([f"checkpoint={path}"], tmp, script=script)
        obs = clear_error(code, out, "evil.ckpt")
        seen.append(f"{script}: {obs.detail}")
        if obs.outcome != "clear error" or marker.exists():
            return Observed("lost", f"{script}: exit {code}, payload ran: {marker.exists()}: {obs.detail}", code, out)
    return Observed("clear error", f"payload never ran; {seen[0]}")


CASES: dict[str, Callable[[Path], Observed | None]] = {
    "malicious checkpoint (export, predict, val)": malicious_checkpoint,
    "unwritable results_dir": unwritable_results_dir,
    "record folder blocked after training": record_blocked_after_training,
    "path-traversal name (name=../../../../escape)": traversal_name,
    "bad values (batch size 0, lr -1, 0 epochs, image size 0, unknown backbone)": bad_values,
    "bad sweep axis value (unknown backbone, image size 0)": bad_axis_value,
    "unwritable SQLite storage and digits cache": unwritable_storage,
    "PostgreSQL password in the storage URL": password_redacted,
    "Ctrl-C mid-training (single run)": sigint_single_run,
    "Ctrl-C mid-point (sweep)": sigint_sweep,
    "SIGTERM mid-point (sweep)": sigterm_sweep,
    "kill -9 of a worker mid-point (workers=2)": kill9_worker,
    "3 workers on one SQLite file": three_workers,
    "3 workers on one PostgreSQL database": three_workers_postgres,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated function names of the cases to run")
    parser.add_argument("--out", default=str(ROOT / "reports" / "reliability.md"))
    args = parser.parse_args(argv)
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    rows = []
    for title, case in CASES.items():
        if only and case.__name__ not in only:
            continue
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="yolozoo-fault-") as tmp:
            try:
                obs = case(Path(tmp))
            except Exception as e:  # a case that crashes is a finding, not a crash of this script
                obs = Observed("lost", f"the case raised {type(e).__name__}: {e}")
        if obs is None:
            rows.append((title, "skipped", "YOLOZOO_TEST_PG_URL is not set", 0.0))
            continue
        rows.append((title, obs.outcome, obs.detail.replace("|", "/").replace("\n", " ")[:240],
                     time.monotonic() - start))
        print(f"{obs.outcome:>12}  {title}: {rows[-1][2]}", flush=True)
        if obs.outcome == "lost":
            print(obs.output[-3000:], flush=True)
    lines = ["# Reliability: fault cases", "",
             "Written by `python bench/reliability.py`: each case runs `bench/run.py` as real processes at smoke "
             "size and injects one fault. Outcomes: **recovered** (nothing trained is lost; the work completes or "
             "resumes), **clear error** (exit 2 before any training, one line naming the key or file), **lost** "
             "(anything else). `tests/test_faults.py` runs the same cases (`nox -s faults` the long ones).", "",
             "| case | outcome | observed |", "|---|---|---|"]
    if only and Path(args.out).is_file():  # --only: update those rows of the existing report, keep the others
        fresh = {title: (outcome, detail) for title, outcome, detail, _ in rows}
        table = Path(args.out).read_text().splitlines()[len(lines):]
        kept = [line.split(" | ") for line in table if line.startswith("| ")]
        old = {cells[0][2:]: (cells[1], cells[2][:-2]) for cells in kept if len(cells) == 3}
        rows = [(title, *fresh.get(title, old.get(title, ("not run", "-"))), 0.0) for title in CASES]
    lines += [f"| {title} | {outcome} | {detail} |" for title, outcome, detail, _ in rows]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 1 if any(outcome == "lost" for _, outcome, _, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
