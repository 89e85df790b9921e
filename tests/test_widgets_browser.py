"""Slow browser check of the generation panel: JupyterLab in headless Chromium (tests/browser/check_panel.py).

Needs a Chromium executable (``COGFUN_CHROMIUM`` or ``chromium`` on PATH) and a Python with the ``playwright``
package (``COGFUN_PLAYWRIGHT_PYTHON``, or this Python when it has it); skips with the reason otherwise.
JupyterLab and the kernel run under this Python, which imports cogfun.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "browser" / "check_panel.py"


def _chromium():
    path = os.environ.get("COGFUN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path if path and Path(path).exists() else None


def _playwright_python():
    given = os.environ.get("COGFUN_PLAYWRIGHT_PYTHON")
    if given:
        return given if Path(given).exists() else None
    return sys.executable if importlib.util.find_spec("playwright") else None


def test_generation_panel_renders_and_generates_in_jupyterlab(tmp_path):
    chromium, python = _chromium(), _playwright_python()
    if chromium is None:
        pytest.skip("no Chromium: apt-get install chromium, or set COGFUN_CHROMIUM")
    if python is None:
        pytest.skip("no playwright: pip install playwright (no browser download needed), or point "
                    "COGFUN_PLAYWRIGHT_PYTHON at a Python that has it")
    screenshot = tmp_path / "panel.png"
    result = subprocess.run(
        [python, str(SCRIPT), str(screenshot), "--jupyter-python", sys.executable, "--chromium", chromium,
         "--timeout", "240"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"download_href_prefix": "data:video/mp4;base64,"' in result.stdout
    assert '"progress": "100%"' in result.stdout
    assert "blocked" in result.stdout
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
