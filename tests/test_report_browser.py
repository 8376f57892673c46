"""report.html opened in a real browser: Debian's headless Chromium decodes every figure.

The page's inline script writes ``data-rendered="<decoded>/<images>"`` on ``<body>`` once it
has loaded; Chromium's ``--dump-dom`` prints the DOM after that. Setup installs Chromium
(``make setup`` / ``make test`` run ``scripts/system-deps.sh chromium --optional``). Without
it the test fails where setup could have installed it (root with apt-get) and skips, saying
why, only where it cannot be installed.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from plasticine_jax.report import write_report
from tests.test_report import _write_run

ROOT = Path(__file__).resolve().parents[1]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    installable = shutil.which("apt-get") and (
        os.geteuid() == 0
        or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    )
    if installable:
        pytest.fail(
            "Chromium is missing although this machine could install it: run "
            "`bash scripts/system-deps.sh chromium` (make setup does)"
        )
    pytest.skip(
        "Chromium is not installed and cannot be installed here (no root or passwordless "
        "sudo with apt-get); scripts/system-deps.sh chromium prints the command"
    )


def _rendered(exe: str, html: Path) -> tuple[int, int]:
    proc = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'data-rendered="(\d+)/(\d+)"', proc.stdout)
    assert m, "the page's script did not run: " + proc.stdout[:500]
    return int(m.group(1)), int(m.group(2))


def test_every_figure_renders_in_chromium(tmp_path):
    exe = _chromium()
    html = write_report(_write_run(tmp_path / "run", tasks=True), tmp_path / "out", reps=1000)
    figures = len(list((tmp_path / "out" / "figures").glob("*.svg")))
    assert figures >= 4
    assert _rendered(exe, html) == (figures, figures)
    # the check can fail: a figure whose data is not an image does not decode
    text = html.read_text()
    i = text.index("base64,") + len("base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(
        text[:i] + base64.b64encode(b"not a png").decode() + text[text.index("'", i) :]
    )
    assert _rendered(exe, broken) == (figures - 1, figures)
