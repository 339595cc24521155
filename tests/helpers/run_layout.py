"""Runs laid out in real git repositories as the pipeline lays them out, without agents.

Each run is made with the pipeline's own git steps and names (``fresh_worktree``,
``commit_all``, ``merge_branches``; ``subtask_branch``, ``result_branch``,
``result_worktree_path``): a subtask's "build" writes one file.
"""

from __future__ import annotations

from pathlib import Path

from agents.steps import result_branch, result_worktree_path, subtask_branch
from orchestrator.gitops import commit_all, fresh_worktree, merge_branches
from orchestrator.lifecycle import RunHandle, fail_run, finish_run
from orchestrator.workspace import Workspace
from schemas import RunManifest, RunResult, RunStatus, StepStatus, SubtaskRecord
from tests.conftest import sample_manifest
from tests.helpers.repos import git


def target_repo(folder: Path) -> Path:
    """A target repository ``folder/target`` with one commit on main; ``__pycache__/``
    is ignored."""
    repo = folder / "target"
    repo.mkdir()
    (repo / "README.md").write_text("# target\n")
    (repo / ".gitignore").write_text("__pycache__/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        git(repo, *args)
    return repo


def make_run(
    workspace: Workspace,
    repo: Path,
    *,
    status: RunStatus,
    subtasks: tuple[str, ...] = ("slugify", "truncate"),
    merged: bool = True,
    task_id: str = "add-text-helpers",
) -> RunHandle:
    """A run whose subtasks were built (one file each) and, if ``merged``, merged into
    its result branch; then ended with ``status`` (FAILED: by an error, so resumable)."""
    base = git(repo, "rev-parse", "main")
    manifest = sample_manifest(task_id)
    manifest.task.repo_path, manifest.task.base_commit = str(repo), base
    workspace.store.create(manifest)
    handle = RunHandle(workspace, manifest.task_id, manifest.run_id)
    records = []
    for sid in subtasks:
        tree = fresh_worktree(
            repo, handle.work_dir / "subtasks" / sid, subtask_branch(handle, sid), base
        )
        (tree.path / f"{sid}.py").write_text(f"def {sid}(): ...\n")
        commit, _ = commit_all(tree, f"{sid}: build")
        records.append(
            SubtaskRecord(
                id=sid,
                title=sid,
                status=StepStatus.SUCCEEDED,
                branch=tree.branch,
                worktree=str(tree.path),
                commit=commit,
            )
        )
    result = None
    if merged:
        tree = fresh_worktree(repo, result_worktree_path(handle), result_branch(handle), base)
        result = RunResult(
            branch=tree.branch, commit=merge_branches(tree, [r.branch or "" for r in records])
        )

    def record(m: RunManifest) -> None:
        m.subtasks, m.result = records, result

    handle.update(record, event="test.built")
    if status is RunStatus.FAILED:
        fail_run(handle, "the model is down", error_type="AgentServerError")
    elif status.finished:
        finish_run(handle, status)
    elif status is RunStatus.PAUSED:

        def pause(m: RunManifest) -> None:
            m.status = RunStatus.PAUSED

        handle.update(pause, event="test.paused")
    return handle


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines()


def worktrees(repo: Path) -> list[Path]:
    lines = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [Path(line.removeprefix("worktree ")) for line in lines if line.startswith("worktree ")][
        1:
    ]


def layout(repo: Path, workspace: Workspace) -> tuple[list[str], list[Path], list[Path]]:
    """Branches, registered worktrees, and every file and folder under ``work/``."""
    return branches(repo), worktrees(repo), sorted(workspace.settings.work_dir.rglob("*"))
