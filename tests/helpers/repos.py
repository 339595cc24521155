"""Small git repositories and task files for tests of runs (no network, no codex)."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]


def git(repo: Path, *args: str) -> str:
    """``git args`` in ``repo`` with a test identity; its stdout, stripped."""
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def task_beside_repo(folder: Path, task: str) -> Path:
    """``folder/demo.yaml`` holding ``task``, next to a clean git repository
    ``folder/repo`` (one committed README on ``main``); returns the task file."""
    repo = folder / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("# demo\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        git(repo, *args)
    path = folder / "demo.yaml"
    path.write_text(task)
    return path
