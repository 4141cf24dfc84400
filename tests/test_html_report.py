"""The self-contained HTML study report, checked in a real browser (headless Chromium) where one is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from test_reports_helpers import ASSIGNER_RUNS, assigners_frame, assigners_spec

from yolozoo.analysis import prepare, render_sweep

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    spec = assigners_spec()
    render_sweep(prepare(assigners_frame(), spec), spec, out)
    return out / "assigners.html"


def test_page_is_self_contained(page):
    text = page.read_text()
    assert "<script" not in text and "<link" not in text and "<img" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)  # no request leaves the page
    assert text.count("<svg") >= 3  # curves, assignment statistics, forest plot, inline
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "Paired comparisons" in text and "Provenance" not in text  # provenance is a list, not a line


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-dev-shm-usage", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium); "
                                             ".ci/run installs it")
def test_page_in_a_real_browser_on_a_phone_screen(page, tmp_path):
    dom = chromium("--dump-dom", page.as_uri()).stdout
    rows = re.findall(r'<tr class="result">(.*?)</tr>', dom, re.S)
    assert len(rows) == len(ASSIGNER_RUNS)  # every row of the table reached the DOM
    for name in ASSIGNER_RUNS:
        assert any(f">{name}<" in r for r in rows), name
    shot = tmp_path / "phone.png"
    chromium(f"--screenshot={shot}", "--window-size=390,844", "--hide-scrollbars", page.as_uri())
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape[:2] == (844, 390)
    dark = (pixels < 128).mean()  # text and lines on a white page
    assert 0.005 < dark < 0.5 and pixels.std() > 10, "the screenshot is blank or solid"
