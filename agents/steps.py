"""The agent steps of a run: one role call each, recorded in the manifest, skipped when done.

Each function is what one Prefect task of a phase flow does, as plain async code:
check the resume rule (a step recorded done whose output artifact still has its
hash is skipped and its output reloaded), record the step as started, make the
role call, write the output artifact, and record the outcome. A step redone after
a crash starts a new codex thread (threads do not survive a server restart) from a
clean worktree, with a note in the prompt.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.exceptions import InvalidInputError
from orchestrator.gitops import (
    Worktree,
    branch_commit,
    commit_all,
    diff,
    fresh_worktree,
    merge_branches,
)
from orchestrator.lifecycle import (
    RunHandle,
    StepOutcome,
    begin_step,
    completed_output,
    fail_step,
    finish_step,
)
from schemas import (
    AgentRole,
    PhaseName,
    Plan,
    ReviewVerdict,
    RunManifest,
    RunResult,
    StepStatus,
    SubtaskRecord,
    SubtaskSpec,
    TestReport,
    TokenUsage,
)

from .events import EventCallback
from .roles import RoleOutcome, run_builder, run_planner, run_reviewer, run_tester
from .session import CodexSession

PLAN_STEP, TEST_STEP, REVIEW_STEP = "plan", "test", "review"
PLAN_ARTIFACT = "plan.json"
TEST_ARTIFACT = "test-report.json"
REVIEW_ARTIFACT = "review.json"
REDO_NOTE = (
    "Note: an earlier attempt of this step was interrupted and has been discarded; "
    "the working tree is clean again. Do the whole step from the start."
)


def build_step_id(subtask_id: str) -> str:
    return f"build-{subtask_id}"


def build_artifact(subtask_id: str) -> str:
    return f"build/{subtask_id}.json"


def subtask_branch(handle: RunHandle, subtask_id: str) -> str:
    return f"orchestrator/{handle.task_id}/{handle.run_id}/subtask/{subtask_id}"


def result_branch(handle: RunHandle) -> str:
    return f"orchestrator/{handle.task_id}/{handle.run_id}/result"


def result_worktree_path(handle: RunHandle) -> Path:
    return handle.work_dir / "result"


def _repo(manifest: RunManifest) -> Path:
    return Path(manifest.task.repo_path)


def _redo_context(handle: RunHandle, step_id: str) -> str:
    step = handle.read().step(step_id)
    return REDO_NOTE if step is not None and step.attempt > 1 else ""


def _outcome(outcome: RoleOutcome[object]) -> StepOutcome:
    return StepOutcome(
        thread_id=outcome.thread_id,
        prompt_sha256=outcome.prompt_sha256,
        commands=list(outcome.commands),
        patches=list(outcome.patches),
        tokens=outcome.tokens,
        duration_ms=outcome.duration_ms,
    )


# -- plan --------------------------------------------------------------------------


async def plan_step(
    handle: RunHandle,
    session: CodexSession,
    *,
    on_event: EventCallback | None = None,
    task_run_id: str | None = None,
) -> Plan:
    """The plan: fixed subtasks from the task spec, or the planner's split of the goal."""
    done = completed_output(handle, PLAN_STEP)
    if done is not None:
        return Plan.model_validate_json(handle.read_artifact(done))
    manifest = handle.read()
    spec = manifest.task.spec
    begin_step(handle, PhaseName.PLAN, PLAN_STEP, AgentRole.PLANNER)
    try:
        if spec.subtasks:
            plan = Plan(
                summary=f"Fixed subtasks from the task spec: {spec.title}", subtasks=spec.subtasks
            )
            outcome = NO_AGENT_CALL
        else:
            role = await run_planner(
                session,
                spec,
                repo=_repo(manifest),
                context=_redo_context(handle, PLAN_STEP),
                on_event=on_event,
            )
            plan, outcome = role.output, _outcome(role)
    except Exception as exc:
        fail_step(handle, PhaseName.PLAN, PLAN_STEP, exc)
        raise
    artifact = handle.write_artifact(
        PLAN_ARTIFACT, plan.model_dump_json(indent=2), kind="plan", step_id=PLAN_STEP
    )
    finish_step(handle, PLAN_STEP, outcome, artifact=artifact, task_run_id=task_run_id)
    _record_subtasks(handle, plan.subtasks)
    return plan


def _record_subtasks(handle: RunHandle, subtasks: list[SubtaskSpec]) -> None:
    def record(m: RunManifest) -> None:
        known = {s.id for s in m.subtasks}
        m.subtasks += [
            SubtaskRecord(
                id=s.id,
                title=s.title,
                acceptance=s.acceptance,
                files=s.files,
                step_id=build_step_id(s.id),
                branch=subtask_branch(handle, s.id),
            )
            for s in subtasks
            if s.id not in known
        ]

    handle.update(record, event="subtasks.planned", count=len(subtasks))


# -- build -------------------------------------------------------------------------


def subtask_done(handle: RunHandle, subtask_id: str) -> bool:
    """Built, with its output artifact intact and its branch still at the recorded commit."""
    if completed_output(handle, build_step_id(subtask_id)) is None:
        return False
    manifest = handle.read()
    record = manifest.subtask(subtask_id)
    if record is None or record.branch is None or record.commit is None:
        return False
    return branch_commit(_repo(manifest), record.branch) == record.commit


async def build_step(
    handle: RunHandle,
    session: CodexSession,
    subtask_id: str,
    *,
    on_event: EventCallback | None = None,
    task_run_id: str | None = None,
) -> SubtaskRecord:
    """One builder call for exactly one subtask, in its own fresh worktree and branch."""
    step_id = build_step_id(subtask_id)
    if subtask_done(handle, subtask_id):
        return _subtask(handle, subtask_id)
    manifest = handle.read()
    record = _subtask(handle, subtask_id)
    worktree = fresh_worktree(
        _repo(manifest),
        handle.work_dir / "subtasks" / subtask_id,
        subtask_branch(handle, subtask_id),
        manifest.task.base_commit,
    )
    begin_step(handle, PhaseName.BUILD, step_id, AgentRole.BUILDER)
    _mark_subtask(handle, subtask_id, StepStatus.RUNNING, worktree=worktree, count_call=True)
    try:
        role = await run_builder(
            session,
            manifest.task.spec,
            _spec_of(record),
            worktree=worktree.path,
            context=_redo_context(handle, step_id),
            on_event=on_event,
        )
        commit, changed = commit_all(worktree, f"{subtask_id}: {record.title}")
    except Exception as exc:
        fail_step(handle, PhaseName.BUILD, step_id, exc)
        _mark_subtask(handle, subtask_id, StepStatus.FAILED)
        raise
    report = role.output.model_copy(update={"files_changed": changed})
    artifact = handle.write_artifact(
        build_artifact(subtask_id), report.model_dump_json(indent=2), kind="build", step_id=step_id
    )
    handle.write_artifact(
        f"build/{subtask_id}.diff",
        diff(worktree.path, manifest.task.base_commit, commit),
        kind="diff",
        step_id=step_id,
    )
    finish_step(handle, step_id, _outcome(role), artifact=artifact, task_run_id=task_run_id)
    return _mark_subtask(handle, subtask_id, StepStatus.SUCCEEDED, commit=commit)


def _subtask(handle: RunHandle, subtask_id: str) -> SubtaskRecord:
    record = handle.read().subtask(subtask_id)
    if record is None:
        raise InvalidInputError(f"run {handle.label} has no subtask {subtask_id!r}")
    return record


def _spec_of(record: SubtaskRecord) -> SubtaskSpec:
    return SubtaskSpec(
        id=record.id, title=record.title, acceptance=record.acceptance, files=record.files
    )


def _mark_subtask(
    handle: RunHandle,
    subtask_id: str,
    status: StepStatus,
    *,
    worktree: Worktree | None = None,
    commit: str | None = None,
    count_call: bool = False,
) -> SubtaskRecord:
    def mark(m: RunManifest) -> None:
        record = m.subtask(subtask_id)
        assert record is not None
        record.status = status
        if worktree is not None:
            record.worktree, record.branch = str(worktree.path), worktree.branch
        if commit is not None:
            record.commit = commit
        if count_call:
            record.builder_calls += 1

    manifest = handle.update(mark, event="subtask.updated", subtask=subtask_id, status=status.value)
    record = manifest.subtask(subtask_id)
    assert record is not None
    return record


# -- merge -------------------------------------------------------------------------


def merge_step(handle: RunHandle) -> RunResult:
    """Merge every built subtask branch, in plan order, into the run's result branch."""
    manifest = handle.read()
    if manifest.result is not None and manifest.result.commit is not None:
        branch = manifest.result.branch or result_branch(handle)
        if branch_commit(_repo(manifest), branch) == manifest.result.commit:
            return manifest.result
    unbuilt = [s.id for s in manifest.subtasks if s.status is not StepStatus.SUCCEEDED]
    if unbuilt:
        raise InvalidInputError(f"cannot merge: subtasks not built: {', '.join(unbuilt)}")
    worktree = fresh_worktree(
        _repo(manifest),
        result_worktree_path(handle),
        result_branch(handle),
        manifest.task.base_commit,
    )
    commit = merge_branches(worktree, [s.branch for s in manifest.subtasks if s.branch])
    result = RunResult(
        branch=worktree.branch,
        commit=commit,
        diff_stat=diff(worktree.path, manifest.task.base_commit, commit, stat=True),
    )

    def record(m: RunManifest) -> None:
        m.result = result

    handle.update(record, event="result.merged", branch=worktree.branch, commit=commit)
    return result


def result_worktree(handle: RunHandle) -> Worktree:
    """A clean worktree of the result branch at its recorded commit."""
    manifest = handle.read()
    if manifest.result is None or manifest.result.commit is None or not manifest.result.branch:
        raise InvalidInputError(f"run {handle.label} has no merged result yet")
    return fresh_worktree(
        _repo(manifest),
        result_worktree_path(handle),
        manifest.result.branch,
        manifest.result.commit,
    )


# -- test and review ---------------------------------------------------------------


async def test_step(
    handle: RunHandle,
    session: CodexSession,
    *,
    on_event: EventCallback | None = None,
    task_run_id: str | None = None,
) -> TestReport:
    """The tester runs the project's test command on the merged result."""
    done = completed_output(handle, TEST_STEP)
    if done is not None:
        return TestReport.model_validate_json(handle.read_artifact(done))
    worktree = result_worktree(handle)
    manifest = handle.read()
    begin_step(handle, PhaseName.TEST, TEST_STEP, AgentRole.TESTER)
    try:
        role = await run_tester(
            session,
            manifest.task.spec,
            repo=worktree.path,
            context=_redo_context(handle, TEST_STEP),
            on_event=on_event,
        )
    except Exception as exc:
        fail_step(handle, PhaseName.TEST, TEST_STEP, exc)
        raise
    artifact = handle.write_artifact(
        TEST_ARTIFACT, role.output.model_dump_json(indent=2), kind="test-report", step_id=TEST_STEP
    )
    finish_step(handle, TEST_STEP, _outcome(role), artifact=artifact, task_run_id=task_run_id)
    _record_result(handle, tests_passed=role.output.passed)
    return role.output


test_step.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


async def review_step(
    handle: RunHandle,
    session: CodexSession,
    *,
    on_event: EventCallback | None = None,
    task_run_id: str | None = None,
) -> ReviewVerdict:
    """The reviewer reads the diff and the test report and gives a verdict."""
    done = completed_output(handle, REVIEW_STEP)
    if done is not None:
        return ReviewVerdict.model_validate_json(handle.read_artifact(done))
    manifest = handle.read()
    test_record = completed_output(handle, TEST_STEP)
    if test_record is None or manifest.result is None or manifest.result.commit is None:
        raise InvalidInputError(f"run {handle.label} has no tested result to review")
    test_report = TestReport.model_validate_json(handle.read_artifact(test_record))
    worktree = result_worktree(handle)
    change = diff(worktree.path, manifest.task.base_commit, manifest.result.commit)
    begin_step(handle, PhaseName.REVIEW, REVIEW_STEP, AgentRole.REVIEWER)
    try:
        role = await run_reviewer(
            session,
            manifest.task.spec,
            repo=worktree.path,
            diff=change,
            test_report=test_report,
            context=_redo_context(handle, REVIEW_STEP),
            on_event=on_event,
        )
    except Exception as exc:
        fail_step(handle, PhaseName.REVIEW, REVIEW_STEP, exc)
        raise
    artifact = handle.write_artifact(
        REVIEW_ARTIFACT,
        role.output.model_dump_json(indent=2),
        kind="review",
        step_id=REVIEW_STEP,
    )
    finish_step(handle, REVIEW_STEP, _outcome(role), artifact=artifact, task_run_id=task_run_id)
    _record_result(handle, verdict=role.output.verdict.value)
    return role.output


def _record_result(handle: RunHandle, **fields: object) -> None:
    def record(m: RunManifest) -> None:
        m.result = (m.result or RunResult()).model_copy(update=fields)

    handle.update(record, event="result.updated", **fields)


NO_AGENT_CALL = StepOutcome(
    thread_id=None, prompt_sha256=None, commands=[], patches=[], tokens=TokenUsage(), duration_ms=0
)
