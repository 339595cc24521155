"""The agent steps of a run: one role call each, recorded in the manifest, skipped when done.

Each function is what one Prefect task of a phase flow does, as plain async code:
check the resume rule (a step recorded done whose output artifact still has its
hash is skipped and its output reloaded), record the step as started, make the
role call, write the output artifact, and record the outcome. A step redone after
a crash mid-call continues its thread on ``app-server`` (:mod:`agents.durable`), or
starts a new codex thread from a clean worktree with a note in the prompt.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.deterministic import apply_codemods, codemod_catalog, run_linters
from orchestrator.exceptions import InvalidInputError
from orchestrator.gitops import (
    Worktree,
    branch_commit,
    clean_worktree,
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
from orchestrator.runstore import Mutation
from schemas import (
    AgentRole,
    CommandRecord,
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

from .backend import AgentSession
from .durable import begin_attempt, kept_worktree
from .events import EventCallback
from .roles import RoleOutcome, run_builder, run_planner, run_reviewer, run_tester

PLAN_STEP, TEST_STEP, REVIEW_STEP = "plan", "test", "review"
PLAN_ARTIFACT = "plan.json"
TEST_ARTIFACT = "test-report.json"
REVIEW_ARTIFACT = "review.json"


def build_step_id(subtask_id: str) -> str:
    return f"build-{subtask_id}"


def build_artifact(subtask_id: str) -> str:
    return f"build/{subtask_id}.json"


def build_diff_artifact(subtask_id: str) -> str:
    return f"build/{subtask_id}.diff"


def subtask_branch(handle: RunHandle, subtask_id: str) -> str:
    return f"orchestrator/{handle.task_id}/{handle.run_id}/subtask/{subtask_id}"


def result_branch(handle: RunHandle) -> str:
    return f"orchestrator/{handle.task_id}/{handle.run_id}/result"


def result_worktree_path(handle: RunHandle) -> Path:
    return handle.work_dir / "result"


def _repo(manifest: RunManifest) -> Path:
    return Path(manifest.task.repo_path)


def _backend(step_id: str, session: AgentSession, also: Mutation | None = None) -> Mutation:
    """Record on the step which backend and codex version its attempt runs on."""

    def record(m: RunManifest) -> None:
        step = m.step(step_id)
        assert step is not None, step_id
        step.backend, step.codex_version = session.backend, session.codex_version
        if also is not None:
            also(m)

    return record


def _outcome(
    outcome: RoleOutcome[object],
    session: AgentSession,
    *,
    library: list[str] | None = None,
    commands_before: list[CommandRecord] | None = None,
) -> StepOutcome:
    """The step's record: the role call's, after what ran before it (codemods, linters)."""
    return StepOutcome(
        model=session.config.model,
        thread_id=outcome.thread_id,
        prompt_sha256=outcome.prompt_sha256,
        commands=[*(commands_before or []), *outcome.commands],
        patches=list(outcome.patches),
        tokens=outcome.tokens,
        duration_ms=outcome.duration_ms,
        library=library or [],
    )


def _context(*notes: str) -> str:
    return "\n\n".join(note for note in notes if note)


# -- plan --------------------------------------------------------------------------


async def plan_step(
    handle: RunHandle,
    session: AgentSession,
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
    attempt = await begin_attempt(handle, PLAN_STEP, session, on_event=on_event)
    also = _backend(PLAN_STEP, session, attempt.record(PLAN_STEP))
    begin_step(handle, PhaseName.PLAN, PLAN_STEP, AgentRole.PLANNER, also=also)
    try:
        if spec.subtasks:
            plan = Plan(
                summary=f"Fixed subtasks from the task spec: {spec.title}", subtasks=spec.subtasks
            )
            outcome = NO_AGENT_CALL
        else:
            catalog = codemod_catalog(handle.workspace.settings)
            role = await run_planner(
                attempt.session,
                spec,
                repo=_repo(manifest),
                context=_context(attempt.note, catalog),
                on_event=attempt.on_event,
            )
            plan, outcome = role.output, _outcome(role, session)
    except Exception as exc:
        fail_step(handle, PhaseName.PLAN, PLAN_STEP, exc)
        raise
    artifact = handle.store_artifact(
        PLAN_ARTIFACT, plan.model_dump_json(indent=2), kind="plan", step_id=PLAN_STEP
    )
    finish_step(
        handle,
        PLAN_STEP,
        outcome,
        artifacts=[artifact],
        task_run_id=task_run_id,
        also=_subtasks_planned(handle, plan.subtasks),
    )
    return plan


def _subtasks_planned(handle: RunHandle, subtasks: list[SubtaskSpec]) -> Mutation:
    def record(m: RunManifest) -> None:
        known = {s.id for s in m.subtasks}
        m.subtasks += [
            SubtaskRecord(
                id=s.id,
                title=s.title,
                acceptance=s.acceptance,
                files=s.files,
                codemods=s.codemods,
                step_id=build_step_id(s.id),
                branch=subtask_branch(handle, s.id),
            )
            for s in subtasks
            if s.id not in known
        ]

    return record


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
    session: AgentSession,
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
    kept = kept_worktree(_repo(manifest), record)
    redo_because = kept if isinstance(kept, str) else None
    attempt = await begin_attempt(
        handle, step_id, session, on_event=on_event, redo_because=redo_because
    )
    worktree = kept if attempt.continued and isinstance(kept, Worktree) else None
    worktree = worktree or fresh_worktree(
        _repo(manifest),
        handle.work_dir / "subtasks" / subtask_id,
        subtask_branch(handle, subtask_id),
        manifest.task.base_commit,
    )
    running = _subtask_marker(subtask_id, StepStatus.RUNNING, worktree=worktree, count_call=True)
    also = _backend(step_id, session, attempt.record(step_id, also=running))
    begin_step(handle, PhaseName.BUILD, step_id, AgentRole.BUILDER, also=also)
    try:
        codemods = apply_codemods(handle.workspace.settings, record.codemods, worktree, subtask_id)
        role = await run_builder(
            attempt.session,
            manifest.task.spec,
            _spec_of(record),
            worktree=worktree.path,
            context=_context(attempt.note, codemods.prompt_note()),
            on_event=attempt.on_event,
        )
        commit, changed = commit_all(worktree, f"{subtask_id}: {record.title}")
    except Exception as exc:
        failed = _subtask_marker(subtask_id, StepStatus.FAILED)
        fail_step(handle, PhaseName.BUILD, step_id, exc, also=failed)
        raise
    changed = [*codemods.changed, *(name for name in changed if name not in codemods.changed)]
    report = role.output.model_copy(update={"files_changed": changed})
    artifacts = [
        handle.store_artifact(
            build_artifact(subtask_id),
            report.model_dump_json(indent=2),
            kind="build",
            step_id=step_id,
        ),
        handle.store_artifact(
            build_diff_artifact(subtask_id),
            diff(worktree.path, manifest.task.base_commit, commit),
            kind="diff",
            step_id=step_id,
        ),
    ]
    built = _subtask_marker(subtask_id, StepStatus.SUCCEEDED, commit=commit)
    outcome = _outcome(role, session, library=codemods.refs, commands_before=codemods.commands)
    finish_step(handle, step_id, outcome, artifacts=artifacts, task_run_id=task_run_id, also=built)
    return _subtask(handle, subtask_id)


def _subtask(handle: RunHandle, subtask_id: str) -> SubtaskRecord:
    return planned_subtask(handle.read(), subtask_id, label=handle.label)


def planned_subtask(manifest: RunManifest, subtask_id: str, *, label: str) -> SubtaskRecord:
    """Subtask ``subtask_id`` of ``manifest`` (run ``label``); one clear error when the
    plan has none of that id."""
    record = manifest.subtask(subtask_id)
    if record is None:
        raise InvalidInputError(f"run {label} has no subtask {subtask_id!r}")
    return record


def _spec_of(record: SubtaskRecord) -> SubtaskSpec:
    return SubtaskSpec(
        id=record.id,
        title=record.title,
        acceptance=record.acceptance,
        files=record.files,
        codemods=record.codemods,
    )


def _subtask_marker(
    subtask_id: str,
    status: StepStatus,
    *,
    worktree: Worktree | None = None,
    commit: str | None = None,
    count_call: bool = False,
) -> Mutation:
    """The change to one subtask's record, applied with its step's own update."""

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

    return mark


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
    """A clean worktree of the result branch at its recorded commit (the merge's own
    worktree when nothing touched it since)."""
    manifest = handle.read()
    if manifest.result is None or manifest.result.commit is None or not manifest.result.branch:
        raise InvalidInputError(f"run {handle.label} has no merged result yet")
    return clean_worktree(
        _repo(manifest),
        result_worktree_path(handle),
        manifest.result.branch,
        manifest.result.commit,
    )


# -- test and review ---------------------------------------------------------------


async def test_step(
    handle: RunHandle,
    session: AgentSession,
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
    attempt = await begin_attempt(handle, TEST_STEP, session, on_event=on_event)
    also = _backend(TEST_STEP, session, attempt.record(TEST_STEP))
    begin_step(handle, PhaseName.TEST, TEST_STEP, AgentRole.TESTER, also=also)
    try:
        role = await run_tester(
            attempt.session,
            manifest.task.spec,
            repo=worktree.path,
            context=attempt.note,
            on_event=attempt.on_event,
        )
        lint = run_linters(handle.workspace.settings, manifest.task.spec.linters, worktree)
    except Exception as exc:
        fail_step(handle, PhaseName.TEST, TEST_STEP, exc)
        raise
    report = role.output.model_copy(update={"lint": lint})
    artifact = handle.store_artifact(
        TEST_ARTIFACT, report.model_dump_json(indent=2), kind="test-report", step_id=TEST_STEP
    )
    finish_step(
        handle,
        TEST_STEP,
        _outcome(role, session, library=[r.entry for r in lint]),
        artifacts=[artifact],
        task_run_id=task_run_id,
        also=_result_fields(tests_passed=report.all_passed),
    )
    return report


test_step.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


async def review_step(
    handle: RunHandle,
    session: AgentSession,
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
    attempt = await begin_attempt(handle, REVIEW_STEP, session, on_event=on_event)
    also = _backend(REVIEW_STEP, session, attempt.record(REVIEW_STEP))
    begin_step(handle, PhaseName.REVIEW, REVIEW_STEP, AgentRole.REVIEWER, also=also)
    try:
        role = await run_reviewer(
            attempt.session,
            manifest.task.spec,
            repo=worktree.path,
            diff=change,
            test_report=test_report,
            context=attempt.note,
            on_event=attempt.on_event,
        )
    except Exception as exc:
        fail_step(handle, PhaseName.REVIEW, REVIEW_STEP, exc)
        raise
    artifact = handle.store_artifact(
        REVIEW_ARTIFACT,
        role.output.model_dump_json(indent=2),
        kind="review",
        step_id=REVIEW_STEP,
    )
    finish_step(
        handle,
        REVIEW_STEP,
        _outcome(role, session),
        artifacts=[artifact],
        task_run_id=task_run_id,
        also=_result_fields(verdict=role.output.verdict.value),
    )
    return role.output


def _result_fields(**fields: object) -> Mutation:
    """The change to the run's result, applied with its step's own update."""

    def record(m: RunManifest) -> None:
        m.result = (m.result or RunResult()).model_copy(update=fields)

    return record


NO_AGENT_CALL = StepOutcome(
    thread_id=None, prompt_sha256=None, commands=[], patches=[], tokens=TokenUsage(), duration_ms=0
)
