"""cogfun.source_state: the commit and dirty flag that runs record, on a throwaway git checkout."""

import shutil
import subprocess

import pytest

from cogfun.source_state import source_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path):
    """A checkout with one commit: code/model.py tracked, notes/ holding a tracked file."""
    root = tmp_path / "repo"
    (root / "code").mkdir(parents=True)
    (root / "notes").mkdir()
    (root / "code" / "model.py").write_text("x = 1\n")
    (root / "notes" / "a.md").write_text("a\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return root


def _head(repo):
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_clean_checkout_records_head(repo):
    assert source_state(repo / "code") == {"commit": _head(repo), "dirty": False}


def test_modified_tracked_file_anywhere_is_dirty(repo):
    (repo / "notes" / "a.md").write_text("changed\n")
    assert source_state(repo / "code") == {"commit": _head(repo), "dirty": True}


def test_untracked_file_counts_only_under_the_folder(repo):
    (repo / "scratch.py").write_text("print(1)\n")  # beside the root: not code that ran
    assert source_state(repo / "code")["dirty"] is False
    (repo / "code" / "new_module.py").write_text("y = 2\n")  # inside: ran, but not in the commit
    assert source_state(repo / "code")["dirty"] is True
    assert source_state(repo / "notes")["dirty"] is False


def test_ignored_files_are_not_dirty(repo):
    (repo / ".gitignore").write_text("runs/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ignore runs")
    (repo / "code" / "runs").mkdir()
    (repo / "code" / "runs" / "out.json").write_text("{}\n")
    assert source_state(repo / "code")["dirty"] is False


def test_outside_a_checkout_is_unknown(tmp_path):
    (tmp_path / "plain").mkdir()
    assert source_state(tmp_path / "plain") == {"commit": None, "dirty": None}
