from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.exceptions import InvalidInputError
from orchestrator.gitops import (
    check_target,
    clean_worktree,
    commit_all,
    diff,
    fresh_worktree,
    git,
    merge_branches,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    (path / "a.txt").write_text("a\n")
    for command in (["init", "-q", "--initial-branch=main"], ["add", "-A"], ["commit", "-qm", "a"]):
        git(path, *command)
    return path


def test_check_target_returns_the_base_commit_and_refuses_a_dirty_tree(repo: Path) -> None:
    assert check_target(repo, "main") == git(repo, "rev-parse", "HEAD")
    (repo / "b.txt").write_text("new\n")
    with pytest.raises(InvalidInputError, match="1 uncommitted change"):
        check_target(repo, "main")


def test_a_pristine_worktree_is_reused_and_a_touched_one_is_made_fresh(
    repo: Path, tmp_path: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = fresh_worktree(repo, tmp_path / "wt", "work", base)
    marker = tree.path / "a.txt"
    inode = marker.stat().st_ino

    assert clean_worktree(repo, tree.path, "work", base).path == tree.path
    assert marker.stat().st_ino == inode  # reused, not checked out again

    (tree.path / "junk.txt").write_text("left by a crashed step\n")
    clean_worktree(repo, tree.path, "work", base)
    assert not (tree.path / "junk.txt").exists()


def test_a_worktree_whose_folder_vanished_is_recreated(repo: Path, tmp_path: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = fresh_worktree(repo, tmp_path / "wt", "work", base)
    subprocess.run(["rm", "-rf", str(tree.path)], check=True)  # registered, but gone

    again = fresh_worktree(repo, tree.path, "work", base)
    assert (again.path / "a.txt").read_text() == "a\n"


@pytest.mark.parametrize("folder_left", [True, False], ids=["folder-left", "folder-gone"])
def test_a_worktree_left_locked_by_a_killed_add_is_replaced(
    repo: Path, tmp_path: Path, folder_left: bool
) -> None:
    """``git worktree add`` locks the worktree while it builds it; killed then, the lock
    stays, and neither ``remove --force`` nor ``prune`` drops a locked worktree."""
    base = git(repo, "rev-parse", "HEAD")
    tree = fresh_worktree(repo, tmp_path / "wt", "work", base)
    git(repo, "worktree", "lock", "--reason", "initializing", str(tree.path))
    if not folder_left:
        subprocess.run(["rm", "-rf", str(tree.path)], check=True)

    again = fresh_worktree(repo, tree.path, "work", base)
    assert (again.path / "a.txt").read_text() == "a\n"
    listing = git(repo, "worktree", "list", "--porcelain").splitlines()
    assert not [line for line in listing if line.startswith("locked")]


def test_a_ref_lock_left_by_a_killed_git_does_not_block_a_fresh_worktree(
    repo: Path, tmp_path: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = fresh_worktree(repo, tmp_path / "wt", "run/work", base)
    (repo / ".git" / "refs" / "heads" / "run" / "work.lock").write_text(base + "\n")
    (repo / ".git" / "worktrees" / "wt" / "index.lock").write_text("")

    again = fresh_worktree(repo, tree.path, "run/work", base)
    assert (again.path / "a.txt").read_text() == "a\n"
    assert git(again.path, "status", "--porcelain") == ""


def test_no_hook_or_config_program_runs_on_our_commits_merges_and_diffs(
    repo: Path, tmp_path: Path
) -> None:
    """A hook or config planted in the repository's git folder never runs on our own git
    commands: ``--no-verify`` alone would still run post-commit and reference-transaction."""
    ran = tmp_path / "ran"
    ran.mkdir()
    hooks = repo / ".git" / "hooks"
    for hook in ("pre-commit", "post-commit", "reference-transaction", "post-merge"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {ran}/{hook}\n")
        (hooks / hook).chmod(0o755)
    tool = tmp_path / "tool.sh"
    tool.write_text(f'#!/bin/sh\ntouch {ran}/"$(basename "$0")-$1"\ncat "$2" 2>/dev/null\n')
    tool.chmod(0o755)
    for key, value in (
        ("core.fsmonitor", str(tool)),
        ("diff.external", str(tool)),
        ("commit.gpgSign", "true"),
        ("gpg.program", str(tool)),
    ):
        subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)

    base = git(repo, "rev-parse", "HEAD")
    side = fresh_worktree(repo, tmp_path / "side", "side", base)
    (side.path / "b.txt").write_text("b\n")
    commit_all(side, "b")
    result = fresh_worktree(repo, tmp_path / "result", "result", base)
    merged = merge_branches(result, ["side"])
    patch = diff(repo, base, merged)

    assert "+b" in patch
    assert sorted(path.name for path in ran.iterdir()) == []
