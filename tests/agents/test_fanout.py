"""The two halves of a subtask built on another machine, without Prefect or codex.

A manager run and a worker's home share only a bare git remote here. The builder's
work is played by a commit on the subtask branch in the worker's clone; the worker's
step is recorded as its build step would record it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.fanout import (
    dispatch_key,
    open_worker_run,
    push_base,
    push_subtask,
    record_build,
    subtask_build,
    subtask_job,
)
from agents.steps import build_artifact, build_diff_artifact, build_step_id, subtask_branch
from flows._fanout import attempt_queue
from orchestrator.exceptions import InvalidInputError
from orchestrator.gitops import branch_commit, commit_all, fresh_worktree
from orchestrator.lifecycle import RunHandle, StepOutcome, begin_step, finish_step, start_run
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import (
    AgentRole,
    BuiltBy,
    CommandRecord,
    PhaseName,
    RunManifest,
    StepStatus,
    SubtaskBuild,
    SubtaskRecord,
    TokenUsage,
)
from tests.helpers.repos import git, task_beside_repo

TASK = """\
id: demo
title: Demo
goal: Add two files.
target: {repo: repo, test_command: "true"}
subtasks:
  - {id: one, title: First file}
  - {id: two, title: Second file}
execution: {parallel: true, max_parallel: 2}
"""
BUILT_BY = BuiltBy(flow_run_id="flow-run-1", worker="worker-a", home="/elsewhere")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(path))
    return path


@pytest.fixture
def manager(tmp_path: Path, remote: Path) -> RunHandle:
    """A started parallel run with its two subtasks planned (as its plan step does)."""
    workspace = Workspace.open(Settings(home=tmp_path / "manager", subtask_remote=str(remote)))
    handle = start_run(workspace, task_file=task_beside_repo(tmp_path, TASK), env="dev")

    def planned(m: RunManifest) -> None:
        m.subtasks = [
            SubtaskRecord(
                id=s.id,
                title=s.title,
                step_id=build_step_id(s.id),
                branch=subtask_branch(handle, s.id),
            )
            for s in m.task.spec.subtasks
        ]

    handle.update(planned)
    return handle


def worker_build(tmp_path: Path, manager: RunHandle, remote: Path, subtask_id: str) -> SubtaskBuild:
    """What a worker does with the job: its own run, a commit, the branch pushed."""
    job = subtask_job(
        manager,
        subtask_id,
        remote=str(remote),
        base_ref=push_base(manager, str(remote)),
        codex_block="default",
        vault_block="default",
    )
    worker = Workspace.open(Settings(home=tmp_path / "worker"))
    handle = open_worker_run(worker, job)
    manifest = handle.read()
    worktree = fresh_worktree(
        Path(manifest.task.repo_path),
        handle.work_dir / "subtasks" / subtask_id,
        subtask_branch(handle, subtask_id),
        manifest.task.base_commit,
    )
    (worktree.path / f"{subtask_id}.txt").write_text(f"{subtask_id}\n")
    commit, _ = commit_all(worktree, subtask_id)
    step_id = build_step_id(subtask_id)
    begin_step(handle, PhaseName.BUILD, step_id, AgentRole.BUILDER)
    artifacts = [
        handle.store_artifact(build_artifact(subtask_id), "{}", kind="build", step_id=step_id),
        handle.store_artifact(build_diff_artifact(subtask_id), "diff", kind="diff"),
    ]

    def built(m: RunManifest) -> None:
        record = m.subtask(subtask_id)
        assert record is not None
        record.status, record.commit, record.builder_calls = StepStatus.SUCCEEDED, commit, 1
        record.worktree = str(worktree.path)

    outcome = StepOutcome(
        thread_id="t",
        prompt_sha256=None,
        commands=[CommandRecord(command="pytest -q", exit_code=0)],
        patches=[],
        tokens=TokenUsage(input_tokens=5, output_tokens=7, total_tokens=12),
        duration_ms=3,
    )
    finish_step(handle, step_id, outcome, artifacts=artifacts, also=built)
    push_subtask(handle, job)
    return subtask_build(handle, subtask_id, BUILT_BY)


def test_the_job_carries_the_plan_and_the_base_and_one_key_per_run_and_subtask(
    manager: RunHandle, remote: Path
) -> None:
    base_ref = push_base(manager, str(remote))
    job = subtask_job(
        manager, "one", remote=str(remote), base_ref=base_ref, codex_block="c", vault_block="v"
    )
    manifest = manager.read()
    assert branch_commit(remote, base_ref) == manifest.task.base_commit
    assert job.task.spec == manifest.task.spec and job.subtask.id == "one"
    assert job.subtask.status is StepStatus.PENDING and job.subtask.commit is None
    other = subtask_job(
        manager, "two", remote=str(remote), base_ref=base_ref, codex_block="c", vault_block="v"
    )
    assert dispatch_key(job) == f"build-subtask:demo/{manager.run_id}/one"
    assert dispatch_key(job) != dispatch_key(other)


def test_a_worker_builds_in_its_own_home_and_the_manager_records_who_built_it(
    tmp_path: Path, manager: RunHandle, remote: Path
) -> None:
    build = worker_build(tmp_path, manager, remote, "one")

    worker_run = RunHandle(
        Workspace.open(Settings(home=tmp_path / "worker")), "demo", manager.run_id
    )
    assert [s.id for s in worker_run.read().subtasks] == ["one"]
    assert Path(worker_run.read().task.repo_path).is_relative_to(tmp_path / "worker")

    record = record_build(manager, str(remote), build)

    repo = Path(manager.read().task.repo_path)
    assert record.built_by == BUILT_BY and record.worktree is None
    assert record.status is StepStatus.SUCCEEDED and record.builder_calls == 1
    assert branch_commit(repo, subtask_branch(manager, "one")) == build.subtask.commit
    step = manager.read().step(build_step_id("one"))
    assert step is not None and step.status is StepStatus.SUCCEEDED
    assert [(c.command, c.exit_code) for c in step.commands] == [("pytest -q", 0)]
    assert step.tokens.total_tokens == 12
    assert manager.read().usage.tokens.total_tokens == 12


@pytest.mark.parametrize(
    "lie",
    [
        {"branch": "orchestrator/demo/other/subtask/one"},
        {"commit": "0" * 40},
    ],
)
def test_a_build_naming_another_branch_or_a_commit_the_remote_lacks_is_refused(
    tmp_path: Path, manager: RunHandle, remote: Path, lie: dict[str, str]
) -> None:
    build = worker_build(tmp_path, manager, remote, "two")
    forged = build.model_copy(update={"subtask": build.subtask.model_copy(update=lie)})
    before = manager.manifest_path.read_bytes()

    with pytest.raises(InvalidInputError, match="worker's build"):
        record_build(manager, str(remote), forged)

    assert manager.manifest_path.read_bytes() == before


def test_each_attempt_has_its_own_key_and_a_crashed_builds_next_attempt_the_next_queue(
    manager: RunHandle, remote: Path
) -> None:
    job = subtask_job(
        manager, "one", remote=str(remote), base_ref="b", codex_block="c", vault_block="v"
    )
    assert dispatch_key(job, 2) == f"{dispatch_key(job)}#2" != dispatch_key(job, 3)
    queues = ["worker-1", "worker-2"]
    assert [attempt_queue(queues, 0, a) for a in (1, 2, 3)] == ["worker-1", "worker-2", "worker-1"]
    assert [attempt_queue(queues, 1, a) for a in (1, 2)] == ["worker-2", "worker-1"]
    assert attempt_queue([], 1, 2) is None


def test_a_worker_refuses_a_base_branch_that_moved_and_makes_no_run(
    tmp_path: Path, manager: RunHandle, remote: Path
) -> None:
    base_ref = push_base(manager, str(remote))
    job = subtask_job(
        manager, "one", remote=str(remote), base_ref=base_ref, codex_block="c", vault_block="v"
    )
    repo = Path(manager.read().task.repo_path)
    (repo / "other.txt").write_text("moved\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "moved")
    git(repo, "push", "-q", "--force", str(remote), f"HEAD:refs/heads/{base_ref}")
    worker = Workspace.open(Settings(home=tmp_path / "worker"))

    with pytest.raises(InvalidInputError, match="not at the run's base commit"):
        open_worker_run(worker, job)

    assert worker.store.list_runs() == []
