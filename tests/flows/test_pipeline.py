"""The manager pipeline end to end, on real parts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from orchestrator.runstore import load_manifest
from schemas import RunStatus, StepStatus, schema_errors
from tests.flows.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def changed_files(repo: Path, branch: str) -> list[str]:
    return subprocess.run(
        ["git", "diff", "--name-only", f"main..{branch}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def run_tests_on(repo: Path, branch: str, checkout: Path) -> subprocess.CompletedProcess[str]:
    """The sample project's own test suite, run on a fresh checkout of ``branch``."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(checkout), branch],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_sample_task_runs_end_to_end(stack: Stack, tmp_path: Path) -> None:
    summary = await pipeline(
        task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
    )

    assert summary["status"] == "succeeded", summary
    manifest = load_manifest(stack.workspace.store.find(summary["run_id"]).manifest_path)
    assert schema_errors("run-manifest", manifest.model_dump(mode="json")) is None
    assert manifest.status is RunStatus.SUCCEEDED
    for phase in ("plan", "build", "test", "review"):
        assert getattr(manifest.phases, phase).status is StepStatus.SUCCEEDED, phase
    assert [s.id for s in manifest.subtasks] == ["slugify", "truncate"]
    assert all(s.builder_calls == 1 for s in manifest.subtasks)
    assert manifest.result is not None and manifest.result.branch is not None
    assert "textkit/__init__.py" in changed_files(stack.repo, manifest.result.branch)
    tests = run_tests_on(stack.repo, manifest.result.branch, tmp_path / "checkout")
    assert tests.returncode == 0, tests.stdout
    assert "passed" in tests.stdout
