"""Run metadata's git lookup (greentrack.metadata.git_info): one git call where git is new
enough, the older two-call form where it is not, and no git at all outside a repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from greentrack.metadata import git_info

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _repo(path: Path, *, commit: bool = True) -> Path:
    path.mkdir()
    subprocess.run([*GIT, "init", "-q"], cwd=path, check=True)
    if commit:
        (path / "f.txt").write_text("1")
        subprocess.run([*GIT, "add", "f.txt"], cwd=path, check=True)
        subprocess.run([*GIT, "commit", "-qm", "x"], cwd=path, check=True)
    return path


def _head(repo: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    return out.stdout.strip()


def _fake_git(bin_dir: Path, log: Path, script: str) -> None:
    """A ``git`` first on PATH that appends its arguments to ``log``, then runs ``script``."""
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "git"
    exe.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n{script}"
    )
    exe.chmod(0o755)


def test_commit_and_dirty_from_one_git_call(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    assert git_info(repo) == {"commit": _head(repo), "dirty": False}
    assert git_info(repo / "sub") == {"commit": _head(repo), "dirty": False}
    (repo / "untracked.txt").write_text("u")  # untracked files do not make it dirty
    assert git_info(repo)["dirty"] is False
    (repo / "f.txt").write_text("2")
    assert git_info(repo) == {"commit": _head(repo), "dirty": True}


def test_a_repository_without_a_commit_has_no_git_info(tmp_path: Path) -> None:
    assert git_info(_repo(tmp_path / "empty", commit=False)) == {}


def test_git_is_not_started_outside_a_repository(tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "calls.txt"
    _fake_git(tmp_path / "bin", log, "sys.exit(128)")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("GIT_DIR", raising=False)
    plain = tmp_path / "plain"
    plain.mkdir()
    if any((d / ".git").exists() for d in (plain, *plain.parents)):
        pytest.skip("the temporary folder is inside a git repository")
    assert git_info(plain) == {}
    assert not log.exists()
    (plain / ".git").mkdir()  # now git could find something: it is asked
    assert git_info(plain) == {}
    assert log.read_text().startswith("status --porcelain=v2")


def test_an_older_git_is_asked_twice(tmp_path: Path, monkeypatch) -> None:
    """git < 2.17 refuses --no-ahead-behind (exit 129): rev-parse HEAD and status instead."""
    repo = tmp_path / "old"
    (repo / ".git").mkdir(parents=True)
    log = tmp_path / "calls.txt"
    _fake_git(
        tmp_path / "bin",
        log,
        "a = sys.argv[1:]\n"
        "if '--no-ahead-behind' in a: sys.exit(129)\n"
        "print('ab' * 20 if a[0] == 'rev-parse' else ' M f.txt')\n",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert git_info(repo) == {"commit": "ab" * 20, "dirty": True}
    assert [line.split()[0] for line in log.read_text().splitlines()] == [
        "status",
        "rev-parse",
        "status",
    ]
