"""Browser check of the panels: JupyterLab in headless Chromium renders each one, and a click makes a video.

One script, no pytest needed (``tests/test_widgets_browser.py`` wraps it as a slow test; CI runs it)::

    python tests/browser/check_panel.py [--out FOLDER] [--jupyter-python .venv/bin/python] [--chromium PATH]

It runs under a Python that has the ``playwright`` package (only its driver is used: no browser download;
Chromium is the system one, e.g. Debian's ``apt-get install chromium``); JupyterLab and the kernel run under
``--jupyter-python`` (default: this repository's ``.venv``, else this Python), which must import ``cogfun``.

Steps:
1. write a notebook with one cell per panel of ``cogfun.widgets`` (the ``GenerationPanel`` on the tiny random
   pipeline, the ``MaskBuilderPanel`` on start+end, the ``EmbeddingExplorerPanel`` of the same transformer)
   into a temporary folder; start JupyterLab there on 127.0.0.1, a free port and a known token, with fresh
   settings and news/update checks off;
2. open it in headless Chromium (fresh profile, every request not to 127.0.0.1 aborted), run the cells, wait
   for the three panels, click Generate, wait for the progress bar to fill, the animated preview to load and
   the download link to appear;
3. check each panel's layout as a user sees it (the generation panel also in inpaint mode): nothing sticks out of the panel or needs a sideways
   scrollbar, no button or label is cut short, every picture keeps its aspect ratio, pixel pictures (masks,
   the video) are drawn with ``image-rendering: pixelated``, no panel shows an error;
4. save one screenshot per panel (``generation.png``, ``mask_builder.png``, ``embedding_explorer.png``, and
   ``generation_inpaint.png``: the generation panel again in inpaint mode, where its uploads show), one
   of the whole window (``jupyterlab.png``, also on failure) and what was seen (``check.json``) into the run
   folder (default ``outputs/browser-check/<YYYYmmdd-HHMMSS>/``, printed at the end; CI keeps it as an
   artefact), and exit 0 on success, 1 on failure.
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
CELLS = {
    "generation": """\
# The generation panel on the tiny random pipeline (browser check)
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import build_components
from cogfun.widgets import EmbeddingExplorerPanel, GenerationPanel, MaskBuilderPanel

pipe = CogVideoXFunPipeline(**build_components("tiny"))
pipe.set_progress_bar_config(disable=True)
panel = GenerationPanel(pipe, height={size}, width={size}, num_frames={frames}, num_inference_steps={steps})
panel.prompt.value = "a red circle moving right"
panel""",
    "mask_builder": """\
# The mask builder on start+end: the reference leaves the last latent frame unknown
masks = MaskBuilderPanel(height=64, width=64, num_frames=9)
masks.source.value = "mode:start_end_to_video"
masks""",
    "embedding_explorer": """\
# The embedding explorer of the same transformer, default view
explorer = EmbeddingExplorerPanel(pipe.transformer)
explorer""",
}
# the root box of each panel (cogfun.widgets adds these classes)
PANELS = {
    "generation": ".cogfun-generation-panel",
    "mask_builder": ".cogfun-mask-builder",
    "embedding_explorer": ".cogfun-embedding-explorer",
}
# What a user would see wrong in one panel, measured in the page: a list of readable problems (empty: fine).
LAYOUT_JS = """(selector) => {
  const root = document.querySelector(selector);
  if (!root) return {problems: [`${selector} is not on the page`], images: []};
  const visible = (el) => { const b = el.getBoundingClientRect(); return b.width > 0 && b.height > 0; };
  const name = (el) => (el.className && el.className.baseVal === undefined ? `${el.tagName.toLowerCase()}.`
      + String(el.className).trim().split(/\\s+/).slice(0, 3).join('.') : el.tagName.toLowerCase())
      + (el.textContent.trim() ? ` "${el.textContent.trim().slice(0, 40)}"` : '');
  const problems = [];
  const edge = root.getBoundingClientRect();
  for (const el of root.querySelectorAll('*')) {
    if (!visible(el) || el.closest('.cogfun-style')) continue;
    const b = el.getBoundingClientRect();
    const out = Math.round(Math.max(b.right - edge.right, edge.left - b.left));
    if (out > 1) problems.push(`sticks out of the panel by ${out} px: ${name(el)}`);
  }
  for (const el of [root, ...root.querySelectorAll('.jupyter-widget-box, .widget-box')]) {
    if (visible(el) && el.scrollWidth > el.clientWidth + 1)
      problems.push(`scrolls sideways (${el.scrollWidth} > ${el.clientWidth} px): ${name(el)}`);
  }
  for (const el of root.querySelectorAll('button, .jupyter-button, .widget-label, .jupyter-widget-label, label')) {
    if (visible(el) && el.scrollWidth > el.clientWidth + 1)
      problems.push(`label cut (${el.scrollWidth} > ${el.clientWidth} px): ${name(el)}`);
  }
  const images = [];
  for (const img of root.querySelectorAll('img')) {
    if (!visible(img)) continue;
    const b = img.getBoundingClientRect();
    const info = {classes: String(img.className), natural: [img.naturalWidth, img.naturalHeight],
                  shown: [Math.round(b.width), Math.round(b.height)],
                  rendering: getComputedStyle(img).imageRendering};
    images.push(info);
    if (!img.complete || img.naturalWidth === 0) { problems.push(`picture not loaded: ${info.classes}`); continue; }
    const ratio = (b.width / b.height) / (img.naturalWidth / img.naturalHeight);
    if (Math.abs(ratio - 1) > 0.02)
      problems.push(`picture stretched (${info.shown} shown for ${info.natural}): ${info.classes}`);
    if (img.classList.contains('cogfun-pixelated') && info.rendering !== 'pixelated')
      problems.push(`pixel picture drawn with image-rendering ${info.rendering}: ${info.classes}`);
  }
  for (const el of root.querySelectorAll('.cogfun-error')) if (visible(el))
    problems.push(`the panel shows an error: ${el.textContent.trim().slice(0, 300)}`);
  return {problems, images, size: [Math.round(edge.width), Math.round(edge.height)]};
}"""
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
    cells = [
        {"cell_type": "code", "execution_count": None, "id": key.replace("_", "-"), "metadata": {}, "outputs": [],
         "source": source.format(size=size, frames=frames, steps=steps).splitlines(keepends=True)}
        for key, source in CELLS.items()
    ]
    notebook = {
        "cells": cells,
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


def drive(chromium: str, url: str, out: Path, profile: Path, timeout_ms: int) -> dict:
    """Open the notebook, run its cells, click Generate, check and photograph each panel into ``out``.

    Returns what was seen; raises on failure (after saving ``jupyterlab.png``).
    """
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
                for key, selector in PANELS.items():  # run each cell, in order: the cursor moves to the next
                    page.keyboard.press("Shift+Enter")
                    page.locator(selector).wait_for(state="visible", timeout=timeout_ms)
                    log(f"{key} panel rendered")
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
                if seen["progress"] not in ("100%", None):
                    raise RuntimeError(f"the progress bar stopped at {seen['progress']}")
                # every panel: measured as shown, then photographed (scrolled into view first)
                seen["panels"], problems = {}, []
                for key, selector in PANELS.items():
                    panel = page.locator(selector)
                    panel.scroll_into_view_if_needed(timeout=timeout_ms)
                    page.wait_for_timeout(300)  # let the output area settle after scrolling
                    layout = page.evaluate(LAYOUT_JS, selector)
                    panel.screenshot(path=str(out / f"{key}.png"), timeout=timeout_ms)
                    seen["panels"][key] = layout
                    problems += [f"{key}: {problem}" for problem in layout["problems"]]
                    log(f"{key}: {len(layout['problems'])} layout problem(s), screenshot {key}.png")
                # the generation panel again in inpaint mode: its uploads (the longest labels) are shown there
                page.locator(f"{PANELS['generation']} select").first.select_option(label="inpaint")
                page.locator(f"{PANELS['generation']} button", has_text="Mask").wait_for(state="visible",
                                                                                         timeout=timeout_ms)
                page.wait_for_timeout(300)
                layout = page.evaluate(LAYOUT_JS, PANELS["generation"])
                page.locator(PANELS["generation"]).screenshot(path=str(out / "generation_inpaint.png"),
                                                              timeout=timeout_ms)
                seen["panels"]["generation_inpaint"] = layout
                problems += [f"generation (inpaint mode): {problem}" for problem in layout["problems"]]
                log(f"generation in inpaint mode: {len(layout['problems'])} layout problem(s), "
                    "screenshot generation_inpaint.png")
                if problems:
                    raise RuntimeError(f"{len(problems)} layout problem(s):\n  " + "\n  ".join(problems))
            finally:
                (out / "check.json").write_text(json.dumps({k: v for k, v in seen.items() if k != "blocked"},
                                                           indent=1))
                page.screenshot(path=str(out / "jupyterlab.png"))
        finally:
            context.close()
    return seen


def default_jupyter_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def default_out() -> Path:
    """A new run folder ``outputs/browser-check/<YYYYmmdd-HHMMSS>`` in this repository (outputs/ is not tracked)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = REPO / "outputs" / "browser-check" / stamp, 1
    while path.exists():  # never mix two runs' screenshots
        n += 1
        path = REPO / "outputs" / "browser-check" / f"{stamp}-{n}"
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder for the screenshots and check.json (default: a new "
                             "outputs/browser-check/<YYYYmmdd-HHMMSS>/ in this repository)")
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

    out = (args.out or default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="cogfun-browser-check-"))
    port, token = free_port(), secrets.token_hex(16)
    write_notebook(folder, args.size, args.frames, args.steps)
    server = start_lab(args.jupyter_python, folder, port, token)
    ok = False
    try:
        wait_for_server(port, token, server, args.timeout)
        log(f"JupyterLab up on 127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}/lab/tree/panel.ipynb?token={token}"
        seen = drive(args.chromium, url, out, folder / ".chromium-profile", int(args.timeout * 1000))
        ok = True
        print(json.dumps({k: v for k, v in seen.items() if k not in ("blocked", "panels")}, indent=1))
        print(f"blocked {len(seen['blocked'])} request(s) not to 127.0.0.1: {sorted(set(seen['blocked']))[:5]}")
        print(f"OK: {len(PANELS)} panels rendered with no layout problem, the generation panel made a video")
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
        shots = sorted(p.name for p in out.glob("*.png"))
        print(f"run folder: {out} ({', '.join(shots) or 'no screenshots'})", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
