"""Runs that fail, and input that is refused before anything starts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.replay import ReplayServer, replay_config
from flows.pipeline import pipeline
from orchestrator.exceptions import InvalidInputError, RunFailedError
from orchestrator.runstore import load_manifest
from schemas import RunStatus, StepStatus
from tests.conftest import EXAMPLES
from tests.flows.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def failing_replay(stack: Stack) -> Iterator[ReplayServer]:
    """The replay set whose builders ship a bug their tests catch."""
    from blocks import CodexServerSettings

    with ReplayServer(EXAMPLES / "replay" / "sample-failing") as server:
        CodexServerSettings.from_config(replay_config(server.url)).save("default", overwrite=True)
        yield server


async def test_failing_tests_fail_the_run_with_the_reason_and_keep_artifacts(
    stack: Stack, failing_replay: ReplayServer
) -> None:
    with pytest.raises(RunFailedError, match="tests failed") as caught:
        await pipeline(task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo))

    manifest = load_manifest(stack.workspace.store.find(caught.value.run_id).manifest_path)
    assert manifest.status is RunStatus.FAILED
    assert manifest.status_reason is not None
    assert manifest.status_reason.startswith("tests failed: python -m pytest -q exited 1")
    assert manifest.phases.test.status is StepStatus.SUCCEEDED  # the tester did its job
    assert manifest.phases.review.status is StepStatus.PENDING  # no review of a red build
    assert manifest.result is not None and manifest.result.tests_passed is False
    names = {a.name for a in manifest.artifacts}
    assert {"plan.json", "test-report.json", "build/slugify.diff", "build/truncate.diff"} <= names
    for record in manifest.artifacts:
        assert stack.workspace.store.artifact_intact(manifest.task_id, manifest.run_id, record)
    assert manifest.sync is not None  # a failed run is mirrored too


def write_task(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def dirty(repo: Path) -> Path:
    (repo / "README.md").write_text("local edit\n")
    return repo


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("malformed", "field 'execution.parallel'"),
        ("missing-repo", "does not exist"),
        ("not-a-repo", "is not the top of a git repository"),
        ("dirty", "uncommitted change"),
        ("unknown-branch", "has no branch 'develop'"),
    ],
)
async def test_bad_input_is_refused_and_leaves_nothing_on_disk(
    stack: Stack, tmp_path: Path, case: str, message: str
) -> None:
    good = (EXAMPLES / "tasks" / "add-text-helpers.yaml").read_text()
    task, repo = stack.task("add-text-helpers.yaml"), stack.repo
    if case == "malformed":
        task = write_task(tmp_path / "bad.yaml", good + "execution:\n  parallel: maybe\n")
    elif case == "missing-repo":
        repo = tmp_path / "absent"
    elif case == "not-a-repo":
        repo = tmp_path / "plain"
        repo.mkdir()
    elif case == "dirty":
        repo = dirty(stack.repo)
    else:
        task = write_task(
            tmp_path / "t.yaml", good.replace("base_branch: main", "base_branch: develop")
        )
    before = snapshot(stack)

    with pytest.raises(InvalidInputError, match=message):
        await pipeline(task_file=str(task), repo=str(repo))

    assert snapshot(stack) == before
    assert not stack.workspace.store.root.exists()  # no run folder, not even an empty one


def snapshot(stack: Stack) -> tuple[str, str]:
    """What the target repository holds: its branches and worktrees."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=stack.repo, capture_output=True, text=True, check=True
        ).stdout

    return git("branch", "--list"), git("worktree", "list")


async def test_a_run_id_of_another_task_is_refused_and_that_run_is_left_alone(
    stack: Stack,
) -> None:
    from tests.conftest import sample_manifest

    other = sample_manifest("other-task")
    ref = stack.workspace.store.create(other)
    before = ref.manifest_path.read_bytes()

    with pytest.raises(InvalidInputError, match="belongs to task other-task"):
        await pipeline(
            task_file=str(stack.task("add-text-helpers.yaml")),
            repo=str(stack.repo),
            run_id=other.run_id,
        )

    assert ref.manifest_path.read_bytes() == before
    assert [r.task_id for r in stack.workspace.store.list_runs()] == ["other-task"]
