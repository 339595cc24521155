"""A run's bookkeeping in ``orchestrator/lifecycle.py`` and ``step_records.py``: start,
resume, steps, the resume rule.

Plain core functions over a run store in a temporary folder; no codex, no Prefect.
(``tests/agents/test_resume_rule.py`` drives the same rule through the agent steps.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.exceptions import InvalidInputError, RunNotFoundError, TaskSpecError
from orchestrator.lifecycle import (
    RunHandle,
    StepOutcome,
    begin_step,
    completed_output,
    fail_run,
    fail_step,
    finish_run,
    finish_step,
    resume_run,
    start_run,
)
from orchestrator.runstore import sha256_file
from orchestrator.workspace import Workspace
from schemas import (
    AgentRole,
    CommandPolicy,
    CommandRecord,
    DeploymentRef,
    ExecutionMode,
    GateMode,
    PhaseName,
    RunManifest,
    RunStatus,
    StepStatus,
    TokenUsage,
)
from tests.conftest import sample_manifest
from tests.helpers.repos import git, task_beside_repo

TASK = """\
id: demo
title: Demo
goal: Add alpha.
target: {repo: repo}
"""
OUTCOME = StepOutcome(
    thread_id="thread-1",
    prompt_sha256="a" * 64,
    commands=[CommandRecord(command="pytest", exit_code=0, status="completed")],
    patches=[],
    tokens=TokenUsage(input_tokens=10, total_tokens=10),
    duration_ms=7,
)


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    """A task file next to a clean git repository ``repo`` on ``main``."""
    return task_beside_repo(tmp_path, TASK)


def runs_on_disk(workspace: Workspace) -> list[Path]:
    root = workspace.store.root
    return sorted(root.glob("*/*/manifest.json")) if root.exists() else []


# -- start -------------------------------------------------------------------------


def test_start_records_the_task_as_it_was_with_mode_and_policy(
    workspace: Workspace, task_file: Path
) -> None:
    handle = start_run(workspace, task_file=task_file, env="dev", flow_run_id="flow-1")

    manifest = handle.read()
    repo = task_file.parent / "repo"
    assert (manifest.task_id, manifest.env, manifest.flow_run_id) == ("demo", "dev", "flow-1")
    assert manifest.status is RunStatus.RUNNING
    assert manifest.task.sha256 == sha256_file(task_file)
    assert manifest.task.repo_path == str(repo.resolve())
    assert manifest.task.base_commit == git(repo, "rev-parse", "main")
    assert manifest.mode is not None and manifest.mode.mode is ExecutionMode.MCP
    policy = manifest.approval_policy
    assert policy is not None
    assert (policy.plan, policy.commands) == (GateMode.AUTO, CommandPolicy.PATCHES_IN_WORKSPACE)
    assert policy.source == "env dev defaults"
    assert manifest.deployment is None  # not started by a deployment
    assert [e.event for e in workspace.audit.read()] == ["manifest.created"]


def test_the_deployment_that_started_a_run_is_recorded_and_kept_on_resume(
    workspace: Workspace, task_file: Path
) -> None:
    nightly = DeploymentRef(id="0b1c2d3e-0000-4000-8000-000000000001", name="nightly/nightly")
    handle = start_run(workspace, task_file=task_file, env="dev", deployment=nightly)
    assert handle.read().deployment == nightly
    fail_run(handle, "killed")
    assert resume_run(workspace, handle.run_id).read().deployment == nightly  # it started it


def test_a_manifest_written_before_runs_recorded_their_deployment_still_reads(
    workspace: Workspace, task_file: Path
) -> None:
    handle = start_run(workspace, task_file=task_file, env="dev")
    data = json.loads(handle.manifest_path.read_text())
    del data["deployment"]  # as written before the field existed
    handle.manifest_path.write_text(json.dumps(data))
    assert handle.read().deployment is None
    handle.update(lambda m: None)  # and is written back valid
    assert json.loads(handle.manifest_path.read_text())["deployment"] is None


def test_a_deployment_name_is_flow_slash_deployment() -> None:
    with pytest.raises(ValidationError, match=r"deployment\.name"):
        RunManifest.model_validate(
            {**sample_manifest().model_dump(mode="json"), "deployment": {"id": "x", "name": "n"}}
        )


def test_an_unknown_environment_gets_the_strict_gates(
    workspace: Workspace, task_file: Path
) -> None:
    policy = start_run(workspace, task_file=task_file, env="prod").read().approval_policy
    assert policy is not None
    assert (policy.plan, policy.handover, policy.commands) == (
        GateMode.REQUIRED,
        GateMode.REQUIRED,
        CommandPolicy.ASK_PERSON,
    )


@pytest.mark.parametrize("problem", ["bad-task", "dirty-repo", "no-base-branch"])
def test_bad_input_is_refused_and_nothing_is_written(
    workspace: Workspace, task_file: Path, problem: str
) -> None:
    repo = task_file.parent / "repo"
    if problem == "bad-task":
        task_file.write_text(TASK.replace("id: demo", "id: 'not an id!'"))
    elif problem == "dirty-repo":
        (repo / "README.md").write_text("changed\n")
    else:
        task_file.write_text(TASK + "  base_branch: nope\n")

    with pytest.raises((InvalidInputError, TaskSpecError)):
        start_run(workspace, task_file=task_file, env="dev")
    assert runs_on_disk(workspace) == []
    assert list(workspace.audit.read()) == []


def test_a_target_inside_a_runs_worktrees_is_refused(workspace: Workspace, task_file: Path) -> None:
    """A target (here inside an earlier run's worktrees) that agents' sandboxes can write."""
    earlier = start_run(workspace, task_file=task_file, env="dev")
    folder = earlier.work_dir / "subtasks"
    folder.mkdir(parents=True)
    inside = task_beside_repo(folder, TASK)
    before = runs_on_disk(workspace)

    with pytest.raises(InvalidInputError) as refused:
        start_run(workspace, task_file=inside, env="dev")
    assert str(refused.value) == (
        f"the target repository {folder / 'repo'} lies inside {earlier.work_dir}, the "
        f"worktrees of run {earlier.run_id}, which agents' sandboxes can write; use a "
        "target repository elsewhere"
    )
    assert runs_on_disk(workspace) == before


def test_a_target_beside_the_runs_in_work_is_taken(workspace: Workspace) -> None:
    """``work/sample-repo`` (as ``orchestrator demo`` makes it) is no run's worktree."""
    folder = workspace.settings.work_dir
    folder.mkdir(parents=True)
    start_run(workspace, task_file=task_beside_repo(folder, TASK), env="dev")


def test_a_target_whose_git_folder_agents_could_write_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A linked worktree outside, whose common git folder (hooks, config) lies inside the
    worktrees of the run that is starting."""
    inside = workspace.settings.work_dir / "demo" / "run-1"
    inside.mkdir(parents=True)
    task_beside_repo(inside, TASK)
    linked = tmp_path / "linked"
    git(inside / "repo", "worktree", "add", "-q", "-b", "side", str(linked / "repo"))
    task_file = linked / "demo.yaml"
    task_file.write_text(TASK)

    with pytest.raises(InvalidInputError, match=r"^its git folder .*/run-1/repo/\.git lies inside"):
        start_run(workspace, task_file=task_file, env="dev", run_id="run-1")
    assert runs_on_disk(workspace) == []


def test_a_run_id_that_exists_is_refused_and_the_run_kept(
    workspace: Workspace, task_file: Path
) -> None:
    handle = start_run(workspace, task_file=task_file, env="dev")
    before = handle.manifest_path.read_bytes()

    with pytest.raises(InvalidInputError, match="already exists"):
        start_run(workspace, task_file=task_file, env="dev", run_id=handle.run_id)
    assert handle.manifest_path.read_bytes() == before


# -- resume ------------------------------------------------------------------------


def test_resume_reopens_a_failed_run_and_records_the_new_flow_run(
    workspace: Workspace, task_file: Path
) -> None:
    """README: a run whose agent step failed is continued by ``orchestrator resume``."""
    handle = start_run(workspace, task_file=task_file, env="dev", flow_run_id="flow-1")
    fail_run(
        handle,
        "codex codex call failed: model outage",
        phase=PhaseName.PLAN,
        error_type="AgentServerError",
    )

    resumed = resume_run(workspace, handle.run_id, flow_run_id="flow-2")

    manifest = resumed.read()
    assert (resumed.task_id, resumed.run_id) == (handle.task_id, handle.run_id)
    assert (manifest.status, manifest.flow_run_id) == (RunStatus.RUNNING, "flow-2")
    assert (manifest.status_reason, manifest.finished_at) == (None, None)
    assert [e.message for e in manifest.errors] == ["codex codex call failed: model outage"]
    assert [e.event for e in workspace.audit.read()][-1] == "run.resumed"


@pytest.mark.parametrize(
    "reason",
    [
        "tests failed: python -m pytest -q exited 1 (1 failed, 3 passed)",
        "reviewer requested changes: no tests for slugify",
    ],
)
def test_a_run_failed_by_its_tests_or_reviewer_stays_failed_on_resume(
    workspace: Workspace, task_file: Path, reason: str
) -> None:
    handle = start_run(workspace, task_file=task_file, env="dev", flow_run_id="flow-1")
    fail_run(handle, reason)
    before = handle.manifest_path.read_bytes()

    resumed = resume_run(workspace, handle.run_id, flow_run_id="flow-2")

    assert resumed.read().status is RunStatus.FAILED
    assert resumed.read().status_reason == reason
    assert handle.manifest_path.read_bytes() == before


def test_resume_keeps_the_flow_run_when_none_is_given(
    workspace: Workspace, task_file: Path
) -> None:
    handle = start_run(workspace, task_file=task_file, env="dev", flow_run_id="flow-1")
    assert resume_run(workspace, f"{handle.task_id}/{handle.run_id}").read().flow_run_id == (
        "flow-1"
    )


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.REJECTED])
def test_a_succeeded_or_rejected_run_is_returned_as_it_is(
    workspace: Workspace, task_file: Path, status: RunStatus
) -> None:
    handle = start_run(workspace, task_file=task_file, env="dev")
    finish_run(handle, status, reason="done")
    before = handle.manifest_path.read_bytes()

    resumed = resume_run(workspace, handle.run_id, flow_run_id="flow-9")

    assert resumed.read().status is status
    assert handle.manifest_path.read_bytes() == before


def test_resume_refuses_a_target_with_uncommitted_changes_and_changes_nothing(
    workspace: Workspace, task_file: Path
) -> None:
    handle = start_run(workspace, task_file=task_file, env="dev")
    before = handle.manifest_path.read_bytes()
    (task_file.parent / "repo" / "stray.txt").write_text("x")

    with pytest.raises(InvalidInputError, match="uncommitted"):
        resume_run(workspace, handle.run_id)
    assert handle.manifest_path.read_bytes() == before


def test_resume_of_an_unknown_run_is_a_clear_error(workspace: Workspace) -> None:
    with pytest.raises(RunNotFoundError):
        resume_run(workspace, "20260101T000000Z-abcdef")


# -- steps and the resume rule -----------------------------------------------------


def started(workspace: Workspace, task_file: Path) -> RunHandle:
    return start_run(workspace, task_file=task_file, env="dev")


def test_each_begin_is_a_new_attempt_from_a_clean_record(
    workspace: Workspace, task_file: Path
) -> None:
    handle = started(workspace, task_file)
    begin_step(handle, PhaseName.PLAN, "plan", AgentRole.PLANNER)
    fail_step(handle, PhaseName.PLAN, "plan", TimeoutError("took too long"))

    step = begin_step(handle, PhaseName.PLAN, "plan", AgentRole.PLANNER)

    assert (step.status, step.attempt, step.error, step.commands) == (
        StepStatus.RUNNING,
        2,
        None,
        [],
    )
    manifest = handle.read()
    assert [s.id for s in manifest.phases.get(PhaseName.PLAN).steps] == ["plan"]
    [error] = manifest.errors
    assert (error.step_id, error.type, error.message) == ("plan", "TimeoutError", "took too long")


def test_finish_records_the_outcome_and_its_artifact_in_one_update(
    workspace: Workspace, task_file: Path
) -> None:
    handle = started(workspace, task_file)
    begin_step(handle, PhaseName.PLAN, "plan", AgentRole.PLANNER)
    artifact = handle.store_artifact("plan.json", '{"a": 1}', kind="plan", step_id="plan")

    finish_step(handle, "plan", OUTCOME, artifacts=[artifact], task_run_id="task-1")

    step = handle.read().step("plan")
    assert step is not None
    assert (step.status, step.thread_id, step.output_artifact, step.task_run_id) == (
        StepStatus.SUCCEEDED,
        "thread-1",
        "plan.json",
        "task-1",
    )
    assert (step.commands, step.tokens, step.duration_ms) == (
        OUTCOME.commands,
        OUTCOME.tokens,
        7,
    )
    assert completed_output(handle, "plan") == artifact


@pytest.mark.parametrize("state", ["unknown", "running", "failed", "changed", "missing"])
def test_only_a_succeeded_step_with_its_artifact_intact_counts_as_done(
    workspace: Workspace, task_file: Path, state: str
) -> None:
    handle = started(workspace, task_file)
    if state != "unknown":
        begin_step(handle, PhaseName.PLAN, "plan", AgentRole.PLANNER)
    if state == "failed":
        fail_step(handle, PhaseName.PLAN, "plan", ValueError("bad answer"))
    if state in {"changed", "missing"}:
        artifact = handle.store_artifact("plan.json", "{}", kind="plan", step_id="plan")
        finish_step(handle, "plan", OUTCOME, artifacts=[artifact])
        path = handle.path / "plan.json"
        path.write_text('{"x": 1}') if state == "changed" else path.unlink()

    assert completed_output(handle, "plan") is None
