"""Which source made a result: the git commit of a checkout and whether the files that ran differ from it.

Runs record this beside their outputs (``cogfun eval``'s ``metrics.json``, an experiment run's
``parameters.json``) so a number can be traced to code. One rule for every caller:

- ``commit``: ``HEAD`` of the checkout holding ``folder``; ``None`` outside a git checkout (an
  installed package) or without ``git``.
- ``dirty``: ``True`` when a tracked file anywhere in the checkout differs from ``HEAD``, or an
  untracked (not ignored) file sits under ``folder``: code that ran but is not in the commit makes the
  commit an incomplete record. Untracked files elsewhere (a scratch script beside the checkout's root)
  do not count. ``None`` when ``commit`` is ``None``.

Read-only: only ``git rev-parse`` and ``git status`` are run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

#: Seconds one git call may take before the state is recorded as unknown.
GIT_TIMEOUT_S = 20


def _git(folder: Path, *args: str) -> str | None:
    """stdout of ``git -C folder ARGS`` (stripped), or None when git is missing, fails or times out."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_state(folder: str | Path) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``folder``.

    Args:
        folder: a folder inside the checkout, whose untracked files count as dirty (e.g. the cogfun
            package, or an experiments folder).
    """
    folder = Path(folder)
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    tracked = _git(folder, "status", "--porcelain", "--untracked-files=no", "--", ":/")
    untracked = _git(folder, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if tracked is None or untracked is None:
        return {"commit": commit, "dirty": None}
    new_here = any(line.startswith("??") for line in untracked.splitlines())
    return {"commit": commit, "dirty": bool(tracked) or new_here}
