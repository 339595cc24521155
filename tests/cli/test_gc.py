"""``orchestrator gc``: the real console script on runs laid out as the pipeline does."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.steps import result_worktree_path, subtask_branch
from orchestrator.retention import collect
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import RunStatus
from tests.cli.conftest import Cli
from tests.helpers.run_layout import branches, layout, make_run, target_repo, worktrees


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return target_repo(tmp_path)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """The workspace the ``cli`` fixture's home holds."""
    return Workspace.open(Settings(home=tmp_path / "home"))


def test_a_worktree_with_uncommitted_changes_is_kept_and_reported(
    cli: Cli, workspace: Workspace, repo: Path
) -> None:
    handle = make_run(workspace, repo, status=RunStatus.SUCCEEDED)
    edited = handle.work_dir / "subtasks" / "slugify"
    (edited / "slugify.py").write_text("def slugify(): return 1\n")
    untracked = result_worktree_path(handle)
    (untracked / "notes.txt").write_text("mine\n")

    done = cli("gc", "--plain")
    code, output = done.returncode, done.stdout

    assert code == 0, output
    assert sorted(worktrees(repo)) == sorted([edited, untracked])
    assert (edited / "slugify.py").read_text() == "def slugify(): return 1\n"
    assert (untracked / "notes.txt").read_text() == "mine\n"
    assert subtask_branch(handle, "slugify") in branches(repo)  # its worktree holds it
    assert subtask_branch(handle, "truncate") not in branches(repo)
    assert not (handle.work_dir / "subtasks" / "truncate").exists()
    label = f"{handle.task_id}/{handle.run_id}"
    lines = output.splitlines()
    assert f"{label}\tworktree\t{edited}\tkeep\t1 uncommitted change(s)" in lines, output
    assert f"{label}\tworktree\t{untracked}\tkeep\t1 uncommitted change(s)" in lines
    assert lines[-1] == "2 removed, 4 kept"


def test_a_dry_run_changes_nothing_and_shows_what_it_would_do(
    cli: Cli, workspace: Workspace, repo: Path
) -> None:
    handle = make_run(workspace, repo, status=RunStatus.SUCCEEDED)
    before = layout(repo, workspace)

    done = cli("gc", "--dry-run", "--plain")
    code, output = done.returncode, done.stdout

    assert code == 0, output
    assert layout(repo, workspace) == before
    assert not (workspace.settings.out_dir / "audit.log").read_text().count("gc.")
    assert "dry run: 5 to remove, 1 kept" in output
    assert (
        subtask_branch(handle, "slugify") in output and str(result_worktree_path(handle)) in output
    )
    assert collect(workspace, dry_run=True) == collect(workspace, dry_run=True)


def test_bad_input_exits_2_and_changes_nothing(cli: Cli, workspace: Workspace, repo: Path) -> None:
    handle = make_run(workspace, repo, status=RunStatus.SUCCEEDED)
    before = layout(repo, workspace)

    unknown = cli("gc", "no-such-run")
    both = cli("gc", handle.run_id, "--task", handle.task_id)

    assert unknown.returncode == 2 and "no-such-run" in unknown.stderr
    assert both.returncode == 2 and "give a run or --task, not both" in both.stderr
    assert layout(repo, workspace) == before


def test_gc_of_one_run_leaves_the_others(cli: Cli, workspace: Workspace, repo: Path) -> None:
    first = make_run(workspace, repo, status=RunStatus.SUCCEEDED)
    second = make_run(workspace, repo, status=RunStatus.SUCCEEDED)

    done = cli("gc", f"{first.task_id}/{first.run_id}")
    code, output = done.returncode, done.stdout

    assert code == 0, output
    assert not first.work_dir.exists() and second.work_dir.exists()
    assert len(worktrees(repo)) == 3
