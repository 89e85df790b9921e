"""Slow browser check of the three panels: JupyterLab in headless Chromium (tests/browser/check_panel.py).

Needs a Chromium executable (``COGFUN_CHROMIUM`` or ``chromium`` on PATH) and a Python with the ``playwright``
package (``COGFUN_PLAYWRIGHT_PYTHON``, or this Python when it has it; ``pip install -e ".[dev]"`` installs it).
Without them the test skips with the reason, except where ``COGFUN_REQUIRE_BROWSER=1`` is set (CI: ``.ci/run``):
there a missing browser fails the test, so the check can never silently stop running.
JupyterLab and the kernel run under this Python, which imports cogfun. The screenshots (one per panel) and
``check.json`` go to a new run folder ``outputs/browser-check/<YYYYmmdd-HHMMSS>/`` (printed by the script).
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "browser" / "check_panel.py"
PANELS = ("generation", "mask_builder", "embedding_explorer")


def _chromium():
    path = os.environ.get("COGFUN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path if path and Path(path).exists() else None


def _playwright_python():
    given = os.environ.get("COGFUN_PLAYWRIGHT_PYTHON")
    if given:
        return given if Path(given).exists() else None
    return sys.executable if importlib.util.find_spec("playwright") else None


def _missing(reason):
    """Skip, or fail where the environment promises a browser (COGFUN_REQUIRE_BROWSER=1, set by .ci/run)."""
    if os.environ.get("COGFUN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"COGFUN_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def test_panels_render_and_generate_in_jupyterlab():
    chromium, python = _chromium(), _playwright_python()
    if chromium is None:
        _missing("no Chromium: apt-get install chromium, or set COGFUN_CHROMIUM")
    if python is None:
        _missing("no playwright: pip install playwright (no browser download needed), or point "
                 "COGFUN_PLAYWRIGHT_PYTHON at a Python that has it")
    result = subprocess.run(
        [python, str(SCRIPT), "--jupyter-python", sys.executable, "--chromium", chromium, "--timeout", "240"],
        capture_output=True, text=True, timeout=900,
    )
    output = result.stdout + result.stderr
    print(output[-3000:])  # the run folder, for CI logs (pytest shows it with -s or on failure)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"download_href_prefix": "data:video/mp4;base64,"' in result.stdout
    assert '"progress": "100%"' in result.stdout
    assert "blocked" in result.stdout
    found = re.search(r"^run folder: (.+?) \(", result.stdout, flags=re.MULTILINE)
    assert found, result.stdout[-3000:]
    folder = Path(found.group(1))
    for name in (*PANELS, "jupyterlab"):
        assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (folder / "check.json").exists()
