"""The learning library inside a run, on real parts: a codemod before the builder's turn,
a linter in the test phase."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.pipeline import pipeline
from orchestrator.exceptions import RunFailedError
from orchestrator.runstore import load_manifest
from schemas import RunManifest, RunStatus, TestReport
from tests.conftest import REPO_ROOT
from tests.flows.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture(autouse=True)
def project_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_LIBRARY_INDEX", str(REPO_ROOT / "library" / "index.yaml"))


def task_variant(stack: Stack, name: str, folder: Path, **changes: Any) -> Path:
    """A copy of a sample task with top-level fields replaced."""
    data = yaml.safe_load(stack.task(name).read_text()) | changes
    path = folder / f"variant-{name}"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def run(stack: Stack, task_file: Path) -> tuple[RunManifest, list[dict[str, Any]]]:
    """One pipeline run: its manifest and the model requests it made."""
    seen = len(stack.replay.requests())
    summary = await pipeline(task_file=str(task_file), repo=str(stack.repo))
    manifest = load_manifest(stack.workspace.store.find(summary["run_id"]).manifest_path)
    return manifest, stack.replay.requests()[seen:]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


async def test_a_subtask_codemod_edits_before_the_builder_and_saves_model_requests(
    stack: Stack, tmp_path: Path
) -> None:
    codemod_task = stack.task("rename-word-count.yaml")
    [subtask] = yaml.safe_load(codemod_task.read_text())["subtasks"]
    by_hand_task = task_variant(
        stack, "rename-word-count.yaml", tmp_path, subtasks=[{**subtask, "codemods": []}]
    )

    by_hand, by_hand_requests = await run(stack, by_hand_task)
    with_codemod, codemod_requests = await run(stack, codemod_task)

    assert (by_hand.status, with_codemod.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    assert len(codemod_requests) < len(by_hand_requests)
    builder_scripts = {r["script"] for r in codemod_requests if r["role"] == "builder"}
    assert builder_scripts == {"build-rename-word-count-codemod"}  # its prompt had the note
    step = with_codemod.step("build-rename")
    assert step is not None
    assert step.library == ["rename-function@1.0.0"]
    codemod_command = step.commands[0]
    assert "orchestrator._libcst_runner" in codemod_command.command
    assert codemod_command.exit_code == 0
    assert by_hand.step("build-rename").library == []  # type: ignore[union-attr]

    [record] = with_codemod.subtasks
    assert record.branch is not None
    log = git(stack.repo, "log", "--format=%s", f"main..{record.branch}")
    assert "rename: codemod rename-function@1.0.0" in log.splitlines()
    changed = git(stack.repo, "diff", "--name-only", f"main..{record.branch}").split()
    assert changed == ["tests/test_core.py", "textkit/__init__.py", "textkit/core.py"]
    assert "def count_words(" in git(stack.repo, "show", f"{record.branch}:textkit/core.py")


async def test_a_linter_finding_fails_the_test_phase_and_names_it(
    stack: Stack, tmp_path: Path
) -> None:
    task = task_variant(stack, "add-text-helpers.yaml", tmp_path, linters=["short-lines@^1"])

    with pytest.raises(RunFailedError, match="linters failed") as caught:
        await pipeline(task_file=str(task), repo=str(stack.repo))

    manifest = load_manifest(stack.workspace.store.find(caught.value.run_id).manifest_path)
    assert manifest.status is RunStatus.FAILED
    reason = manifest.status_reason or ""
    assert reason.startswith("linters failed: short-lines@1.0.0: "), reason
    assert "textkit/slugify.py:9 E501 Line too long (92 > 88)" in reason
    test_step = manifest.step("test")
    assert test_step is not None and test_step.library == ["short-lines@1.0.0"]
    assert manifest.phases.review.steps == []  # no review of a failed test phase
    report = TestReport.model_validate_json(
        (stack.workspace.store.find(manifest.run_id).path / "test-report.json").read_text()
    )
    assert report.passed and not report.all_passed  # the tests passed, the linter did not
    [lint] = report.lint
    assert {(f.path, f.rule) for f in lint.findings} >= {("textkit/slugify.py", "E501")}
