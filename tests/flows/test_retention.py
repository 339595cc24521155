"""Retention after real pipeline runs: the end-of-run step, and ``gc`` after a batch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from orchestrator.retention import Action, collect
from orchestrator.runstore import load_manifest
from schemas import RunManifest, RunStatus
from tests.flows.conftest import Stack
from tests.flows.test_resume import EXPECTED_DIFF, result_diff

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def git_lines(repo: Path, *args: str) -> list[str]:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def run_branches(repo: Path) -> list[str]:
    return git_lines(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/orchestrator/")


def run_worktrees(repo: Path, manifest: RunManifest) -> list[str]:
    lines = git_lines(repo, "worktree", "list", "--porcelain")
    return [line for line in lines if line.startswith("worktree ") and manifest.run_id in line]


async def run_sample(stack: Stack) -> RunManifest:
    summary = await pipeline(
        task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
    )
    assert summary["status"] == "succeeded", summary
    return load_manifest(stack.workspace.store.find(summary["run_id"]).manifest_path)


async def test_gc_after_real_runs_keeps_only_the_result_branches(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = await run_sample(stack)
    monkeypatch.setenv("ORCHESTRATOR_GC_ON_FINISH", "true")
    cleaned = await run_sample(stack)

    # The end-of-run step removed the second run's worktrees and subtask branches only.
    assert run_worktrees(stack.repo, cleaned) == []
    assert not (stack.workspace.settings.work_dir / cleaned.task_id / cleaned.run_id).exists()
    assert len(run_worktrees(stack.repo, kept)) == 3  # two subtasks and the result
    assert [b for b in run_branches(stack.repo) if cleaned.run_id in b] == [cleaned.result.branch]

    items = collect(stack.workspace)

    assert sorted(run_branches(stack.repo)) == sorted([kept.result.branch, cleaned.result.branch])
    assert run_worktrees(stack.repo, kept) == []
    assert list(stack.workspace.settings.work_dir.iterdir()) == []
    assert not [i for i in items if i.action not in (Action.REMOVED, Action.KEEP)]
    for manifest in (kept, cleaned):  # the result is whole, and the manifest unchanged
        assert result_diff(stack.repo, manifest) == EXPECTED_DIFF.read_text()
        after = load_manifest(stack.workspace.store.find(manifest.run_id).manifest_path)
        assert after.status is RunStatus.SUCCEEDED and after.updated_at == manifest.updated_at
