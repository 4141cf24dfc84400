"""A non-editable install finds its sweeps: ``pip install .`` into a fresh venv, then ``python -m yolozoo.run``."""

from __future__ import annotations

import os
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yolozoo.sweep_files import ENV, find_file, list_names, sweep_dirs

ROOT = Path(__file__).resolve().parents[1]


def test_yolozoo_sweeps_folders_come_first(tmp_path, monkeypatch):
    (tmp_path / "search").mkdir()
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    (tmp_path / "assigners.yaml").write_text("name: assigners\n")
    (tmp_path / "search" / "mysearch.yaml").write_text("name: mysearch\n")
    monkeypatch.setenv(ENV, f"{tmp_path / 'missing'}{os.pathsep}{tmp_path}")
    assert sweep_dirs()[:2] == [tmp_path, ROOT / "sweeps"]
    assert find_file("mine") == tmp_path / "mine.yaml"
    assert find_file("assigners") == tmp_path / "assigners.yaml"  # yours shadows the shipped one
    assert find_file("widths") == ROOT / "sweeps" / "widths.yaml"
    assert find_file("mysearch", "search") == tmp_path / "search" / "mysearch.yaml"
    assert {"mine", "assigners", "widths"} <= set(list_names())


@pytest.mark.slow
def test_a_non_editable_install_finds_its_sweep_files(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            str(ROOT), "-w", str(wheels)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("yolozoo-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # no PYTHONPATH: a source tree on it (with the yolozoo.egg-info the build left there) made pip take yolozoo as
    # installed already and skip the wheel
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", ENV)}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              str(wheel)], capture_output=True, text=True, env=env)
    assert install.returncode == 0, install.stderr[-2000:]
    # the dependencies (torch, ...) from this venv, without its editable yolozoo: a .pth line adds
    # the folder to sys.path after the new venv's own packages, and runs none of its .pth files
    (purelib,) = (venv / "lib").glob("python3*/site-packages")
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    code = ("import yolozoo.sweep_files as f; print(f.__file__); print(f.find_file('assigners')); "
            "print(f.find_file('tal', 'search'))")
    where = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr[-2000:]
    package, sweep, search = where.stdout.split()
    assert Path(package).is_relative_to(venv)  # the installed copy, not this clone
    assert Path(sweep) == venv / "share" / "yolozoo" / "sweeps" / "assigners.yaml"
    assert Path(search) == venv / "share" / "yolozoo" / "sweeps" / "search" / "tal.yaml"

    # the README's command finds the sweep and starts its first point; stopped there
    proc = subprocess.Popen([str(python), "-m", "yolozoo.run", "sweep=assigners", "preset=smoke",
                             f"data.root={tmp_path / 'data'}", "wandb.mode=disabled"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, deadline = [], time.monotonic() + 300
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("[assigners]") and "points" in line and "share/yolozoo/sweeps" in line:
                break
            assert time.monotonic() < deadline, "".join(lines)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert any(str(venv / "share" / "yolozoo" / "sweeps" / "assigners.yaml") in line for line in lines), "".join(lines)
