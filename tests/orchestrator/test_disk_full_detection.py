"""A program's failed write on a full disk becomes one StorageError naming the full disk."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import GitError, StorageError
from orchestrator._disk import LOW_SPACE_BYTES, free_bytes, full_disk_error
from orchestrator.gitops import fresh_worktree, git


def test_a_failure_on_a_roomy_disk_is_not_a_full_disk(tmp_path: Path) -> None:
    assert free_bytes(tmp_path) >= LOW_SPACE_BYTES
    assert full_disk_error("git's files", tmp_path, "git: fatal: bad revision") is None


def test_a_failure_that_says_enospc_is_a_full_disk(tmp_path: Path) -> None:
    error = full_disk_error("git's files", tmp_path / "x", "git: No space left on device")
    assert isinstance(error, StorageError) and error.errno_name == "ENOSPC"
    assert str(error).startswith(f"cannot write git's files at {tmp_path / 'x'}: the disk is full")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (root only), unmounted at teardown."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)]
    subprocess.run(command, check=True, capture_output=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


def test_a_worktree_on_a_full_disk_is_a_storage_error_and_leaves_no_worktree(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "big.txt").write_bytes(b"x" * (1024 * 1024))  # larger than the whole tmpfs
    git(repo, "add", "big.txt")
    git(repo, "commit", "-q", "-m", "big")
    target = small_tmpfs / "work" / "tree"

    with pytest.raises(StorageError, match="the disk is full") as raised:
        fresh_worktree(repo, target, "wip", "main")
    assert not isinstance(raised.value, GitError)
    assert not target.exists()
    assert str(target) not in git(repo, "worktree", "list")
