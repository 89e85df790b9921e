"""Browser check of the generation panel: JupyterLab in headless Chromium renders it and a click makes a video.

One script, no pytest needed (``tests/test_widgets_browser.py`` wraps it as a slow test)::

    python tests/browser/check_panel.py /tmp/panel.png [--jupyter-python .venv/bin/python] [--chromium PATH]

It runs under a Python that has the ``playwright`` package (only its driver is used: no browser download;
Chromium is the system one, e.g. Debian's ``apt-get install chromium``); JupyterLab and the kernel run under
``--jupyter-python`` (default: this repository's ``.venv``, else this Python), which must import ``cogfun``.

Steps:
1. write a one-cell notebook that shows a ``GenerationPanel`` on the tiny random pipeline into a temporary
   folder; start JupyterLab there on 127.0.0.1, a free port and a known token, with fresh settings and
   news/update checks off;
2. open it in headless Chromium (fresh profile, every request not to 127.0.0.1 aborted), run the cell, wait
   for the panel, click Generate, wait for the progress bar to fill, the animated preview to load and the
   download link to appear;
3. save a screenshot to the given path (also on failure) and exit 0 on success, 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PANEL_CELL = """\
# The generation panel on the tiny random pipeline (browser check)
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import build_components
from cogfun.widgets import GenerationPanel

pipe = CogVideoXFunPipeline(**build_components("tiny"))
pipe.set_progress_bar_config(disable=True)
panel = GenerationPanel(pipe, height={size}, width={size}, num_frames={frames}, num_inference_steps={steps})
panel.prompt.value = "a red circle moves right"
panel"""
SERVER_CONFIG = """\
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
"""


def log(message: str, began: float = time.perf_counter()) -> None:
    print(f"[{time.perf_counter() - began:6.1f} s] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(folder: Path, size: int, frames: int, steps: int) -> Path:
    source = PANEL_CELL.format(size=size, frames=frames, steps=steps)
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "panel", "metadata": {}, "outputs": [],
                   "source": source.splitlines(keepends=True)}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path = folder / "panel.ipynb"
    path.write_text(json.dumps(notebook, indent=1))
    return path


def start_lab(python: str, folder: Path, port: int, token: str) -> subprocess.Popen:
    config = folder / ".jupyter-config"
    config.mkdir()
    (config / "jupyter_server_config.py").write_text(SERVER_CONFIG)
    settings = folder / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # config, runtime and data (notebook-signing key) in the temporary folder: nothing written to $HOME
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(folder / ".jupyter-runtime"),
           "JUPYTER_DATA_DIR": str(folder / ".jupyter-data"), "PYTHONUNBUFFERED": "1"}
    command = [
        python, "-m", "jupyter", "lab", "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
        f"--LabApp.user_settings_dir={folder / '.lab-settings'}", f"--LabApp.workspaces_dir={folder / '.lab-workspaces'}",
    ]
    logfile = open(folder / "jupyter.log", "wb")  # noqa: SIM115  closed with the process
    return subprocess.Popen(command, cwd=folder, env=env, stdout=logfile, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_server(port: int, token: str, server: subprocess.Popen, timeout: float) -> None:
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {server.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  127.0.0.1 only
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, 15)  # the server and its kernels: the session we started
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def drive(chromium: str, url: str, screenshot: Path, profile: Path, timeout_ms: int) -> dict:
    """Open the notebook, run it, click Generate; returns what was seen (raises on failure)."""
    from playwright.sync_api import sync_playwright

    seen: dict = {"blocked": []}

    def only_local(route):
        host = urlparse(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            seen["blocked"].append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            context.route("**/*", only_local)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda err: seen.setdefault("page_errors", []).append(str(err)))
            try:
                page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
                page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_ms)
                # a cell run before the kernel is ready is dropped: wait for "Idle" in the status bar
                page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=timeout_ms)
                log("notebook open, kernel idle")
                page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
                page.keyboard.press("Shift+Enter")  # run the cell
                panel = page.locator(".cogfun-generation-panel")
                panel.wait_for(state="visible", timeout=timeout_ms)
                log("panel rendered")
                page.locator("button.cogfun-generate").click()
                preview = page.locator("img.cogfun-preview")
                preview.wait_for(state="visible", timeout=timeout_ms)
                page.wait_for_function(
                    "() => { const img = document.querySelector('img.cogfun-preview');"
                    " return img && img.complete && img.naturalWidth > 0; }", timeout=timeout_ms)
                log("video shown")
                link = page.locator("a.cogfun-download")
                link.wait_for(state="attached", timeout=timeout_ms)
                seen["download"] = link.get_attribute("download")
                seen["download_href_prefix"] = (link.get_attribute("href") or "")[:22]
                seen["preview_size"] = page.evaluate(
                    "() => { const i = document.querySelector('img.cogfun-preview');"
                    " return [i.naturalWidth, i.naturalHeight]; }")
                seen["progress"] = page.evaluate(
                    "() => { const b = document.querySelector('.cogfun-generation-panel .progress-bar');"
                    " return b ? b.style.width : null; }")
                seen["status"] = page.locator(".cogfun-status").inner_text()
                seen["errors_in_panel"] = page.locator(".cogfun-generation-panel .cogfun-error").count()
                if seen["errors_in_panel"]:
                    raise RuntimeError("the panel shows an error: "
                                       + page.locator(".cogfun-generation-panel .cogfun-error").inner_text())
                if seen["progress"] not in ("100%", None):
                    raise RuntimeError(f"the progress bar stopped at {seen['progress']}")
            finally:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    return seen


def default_jupyter_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("screenshot", type=Path, help="where to save the screenshot (png)")
    parser.add_argument("--jupyter-python", default=default_jupyter_python(),
                        help="Python that runs JupyterLab and the kernel (must import cogfun)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"),
                        help="Chromium executable (default: chromium on PATH)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per step")
    parser.add_argument("--size", type=int, default=32, help="video height and width (multiple of 16)")
    parser.add_argument("--frames", type=int, default=5, help="frames (4k+1)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (notebook, logs)")
    args = parser.parse_args(argv)
    if not args.chromium or not Path(args.chromium).exists():
        print("no Chromium found: install it (Debian: apt-get install chromium) or pass --chromium", file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print(f"the playwright package is missing in {sys.executable}: pip install playwright (no browser "
              "download needed)", file=sys.stderr)
        return 2

    folder = Path(tempfile.mkdtemp(prefix="cogfun-browser-check-"))
    port, token = free_port(), secrets.token_hex(16)
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    write_notebook(folder, args.size, args.frames, args.steps)
    server = start_lab(args.jupyter_python, folder, port, token)
    ok = False
    try:
        wait_for_server(port, token, server, args.timeout)
        log(f"JupyterLab up on 127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}/lab/tree/panel.ipynb?token={token}"
        seen = drive(args.chromium, url, args.screenshot, folder / ".chromium-profile", int(args.timeout * 1000))
        ok = True
        print(json.dumps({k: v for k, v in seen.items() if k != "blocked"}, indent=1))
        print(f"blocked {len(seen['blocked'])} request(s) not to 127.0.0.1: {sorted(set(seen['blocked']))[:5]}")
        print(f"OK: the panel rendered and generated a video; screenshot {args.screenshot}")
    except Exception as err:  # noqa: BLE001  one readable line, then the server log
        print(f"FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        log_text = (folder / "jupyter.log").read_text(errors="replace")
        print("--- JupyterLab log (tail) ---\n" + log_text[-4000:], file=sys.stderr)
    finally:
        stop(server)
        if args.keep or not ok:
            print(f"kept {folder}", file=sys.stderr if not ok else sys.stdout)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
