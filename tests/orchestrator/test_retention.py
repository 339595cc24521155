"""Retention (orchestrator.retention) on real git repositories laid out as the
pipeline lays out runs (tests/helpers/run_layout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.steps import result_branch, result_worktree_path, subtask_branch
from orchestrator.lifecycle import VERDICT_FAILURE
from orchestrator.retention import Action, ItemKind, collect, collect_run
from orchestrator.workspace import Workspace
from schemas import ErrorRecord, RunManifest, RunStatus
from tests.helpers.repos import git
from tests.helpers.run_layout import branches, layout, make_run, target_repo, worktrees


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return target_repo(tmp_path)


def test_after_a_batch_only_result_branches_and_running_runs_worktrees_remain(
    workspace: Workspace, repo: Path
) -> None:
    done = [make_run(workspace, repo, status=RunStatus.SUCCEEDED) for _ in range(3)]
    running = make_run(workspace, repo, status=RunStatus.RUNNING)
    running_before = (
        [b for b in branches(repo) if running.run_id in b],
        [w for w in worktrees(repo) if running.run_id in str(w)],
    )

    items = collect(workspace)

    assert sorted(branches(repo)) == sorted(
        ["main", *(result_branch(h) for h in done), *running_before[0]]
    )
    assert len(running_before[0]) == 3 and len(running_before[1]) == 3
    assert worktrees(repo) == running_before[1]
    assert sorted(p.name for p in workspace.settings.work_dir.iterdir()) == ["add-text-helpers"]
    assert [p.name for p in (workspace.settings.work_dir / "add-text-helpers").iterdir()] == [
        running.run_id
    ]
    assert sum(i.action is Action.REMOVED for i in items) == 3 * (3 + 2)
    kept = [i for i in items if i.action is Action.KEEP]
    assert {(i.kind, i.reason) for i in kept} == {
        (ItemKind.BRANCH, "result"),
        (ItemKind.RUN, "run is running"),
    }
    for handle in done:  # the result still holds every subtask's file
        files = git(repo, "ls-tree", "--name-only", result_branch(handle)).split()
        assert {"slugify.py", "truncate.py"} <= set(files)
    audit = [e.event for e in workspace.audit.read()]
    assert audit.count("gc.worktree_removed") == 9
    assert audit.count("gc.branch_removed") == 6


def test_commits_not_in_the_result_are_kept(workspace: Workspace, repo: Path) -> None:
    handle = make_run(workspace, repo, status=RunStatus.SUCCEEDED)
    late = handle.work_dir / "subtasks" / "truncate"
    (late / "more.py").write_text("x = 1\n")
    git(late, "add", "-A")
    git(late, "commit", "-q", "-m", "after the merge")

    items = collect_run(workspace, workspace.store.ref(handle.task_id, handle.run_id))

    reasons = {(i.kind, i.name): (i.action, i.reason) for i in items}
    assert reasons[(ItemKind.WORKTREE, str(late))] == (
        Action.KEEP,
        "commits not merged into the result branch",
    )
    assert reasons[(ItemKind.BRANCH, subtask_branch(handle, "truncate"))][0] is Action.KEEP
    assert reasons[(ItemKind.BRANCH, subtask_branch(handle, "slugify"))][0] is Action.REMOVED
    assert git(repo, "rev-parse", subtask_branch(handle, "truncate")) == git(
        late, "rev-parse", "HEAD"
    )


def test_a_run_that_can_resume_is_left_whole(workspace: Workspace, repo: Path) -> None:
    resumable = make_run(workspace, repo, status=RunStatus.FAILED)
    paused = make_run(workspace, repo, status=RunStatus.PAUSED)
    before = layout(repo, workspace)

    items = collect(workspace)

    assert layout(repo, workspace) == before
    assert {(i.run.split("/")[1], i.reason) for i in items} == {
        (resumable.run_id, "run failed by an error and can resume"),
        (paused.run_id, "run is paused"),
    }


def test_a_rejected_run_keeps_its_unmerged_branches_and_their_worktrees(
    workspace: Workspace, repo: Path
) -> None:
    handle = make_run(workspace, repo, status=RunStatus.REJECTED, merged=False)
    empty = make_run(workspace, repo, status=RunStatus.REJECTED, subtasks=(), merged=False)

    items = collect(workspace)

    assert all(i.action is Action.KEEP for i in items if handle.run_id in i.run)
    assert [b for b in branches(repo) if handle.run_id in b] == [
        subtask_branch(handle, "slugify"),
        subtask_branch(handle, "truncate"),
    ]
    assert len([w for w in worktrees(repo) if handle.run_id in str(w)]) == 2
    assert not [i for i in items if empty.run_id in i.run]
    assert not empty.work_dir.exists()


def test_ignored_files_are_not_work(workspace: Workspace, repo: Path) -> None:
    handle = make_run(workspace, repo, status=RunStatus.SUCCEEDED)
    cache = result_worktree_path(handle) / "__pycache__"
    cache.mkdir()
    (cache / "slugify.cpython-311.pyc").write_bytes(b"\0")

    collect(workspace)

    assert worktrees(repo) == []
    assert not handle.work_dir.exists()


def test_a_branch_checked_out_elsewhere_is_kept(
    workspace: Workspace, repo: Path, tmp_path: Path
) -> None:
    handle = make_run(workspace, repo, status=RunStatus.SUCCEEDED)
    branch = subtask_branch(handle, "slugify")
    git(repo, "worktree", "remove", str(handle.work_dir / "subtasks" / "slugify"))
    git(repo, "worktree", "add", "-q", str(tmp_path / "mine"), branch)

    items = collect(workspace)

    assert branch in branches(repo)
    assert (ItemKind.BRANCH, branch, Action.KEEP, "checked out in a worktree that is kept") in {
        (i.kind, i.name, i.action, i.reason) for i in items
    }
    assert worktrees(repo) == [tmp_path / "mine"]


def test_a_run_failed_by_its_verdict_is_finished_for_good(workspace: Workspace, repo: Path) -> None:
    handle = make_run(workspace, repo, status=RunStatus.SUCCEEDED)

    def failed_by_tests(m: RunManifest) -> None:  # what fail_run's default records
        m.status = RunStatus.FAILED
        m.status_reason = "tests failed: pytest exited 1"
        m.errors.append(ErrorRecord(at=m.updated_at, type=VERDICT_FAILURE, message=m.status_reason))

    handle.update(failed_by_tests, event="test.failed")

    collect(workspace)

    assert worktrees(repo) == []
    assert [b for b in branches(repo) if handle.run_id in b] == [result_branch(handle)]
