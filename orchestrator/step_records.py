"""A run's phases and steps as manifest changes: begun, finished, failed; and the resume
rule's test of a step recorded done (:func:`completed_output`).

Plain functions over a run's manifest (:class:`~orchestrator.lifecycle.RunHandle`), which
``agents.steps`` and the phase flows call around each agent call; their names stay
importable from :mod:`orchestrator.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schemas import (
    AgentRole,
    AgentStep,
    ArtifactRecord,
    CommandRecord,
    ErrorRecord,
    PatchRecord,
    PhaseName,
    RunManifest,
    StepStatus,
    TokenUsage,
    utc_now,
)

from .runstore import add_artifacts
from .usage import call_cost, load_price_table

if TYPE_CHECKING:  # lifecycle re-exports this module's names: a real import would be a cycle
    from .lifecycle import RunHandle


def begin_phase(handle: RunHandle, phase: PhaseName, *, flow_run_id: str | None = None) -> None:
    def begin(m: RunManifest) -> None:
        record = m.phases.get(phase)
        record.status = StepStatus.RUNNING
        record.flow_run_id = flow_run_id or record.flow_run_id
        record.started_at = record.started_at or utc_now()
        record.finished_at = None

    handle.update(begin, event="phase.started", phase=phase.value)


def end_phase(handle: RunHandle, phase: PhaseName, status: StepStatus) -> None:
    def end(m: RunManifest) -> None:
        record = m.phases.get(phase)
        record.status = status
        record.finished_at = utc_now()

    handle.update(end, event="phase.finished", phase=phase.value, status=status.value)


def completed_output(handle: RunHandle, step_id: str) -> ArtifactRecord | None:
    """The output artifact of a step recorded done whose file still has its hash; else None.

    This is the resume rule: such a step is skipped, anything else is (re)done.
    """
    manifest = handle.read()
    step = manifest.step(step_id)
    if step is None or step.status is not StepStatus.SUCCEEDED or step.output_artifact is None:
        return None
    record = manifest.artifact(step.output_artifact)
    if record is None:
        return None
    store = handle.workspace.store
    return record if store.artifact_intact(handle.task_id, handle.run_id, record) else None


def begin_step(
    handle: RunHandle,
    phase: PhaseName,
    step_id: str,
    role: AgentRole,
    *,
    also: Callable[[RunManifest], None] | None = None,
) -> AgentStep:
    """Record a step as running (a new attempt), and ``also`` in the same update."""

    def begin(m: RunManifest) -> None:
        steps = m.phases.get(phase).steps
        step = next((s for s in steps if s.id == step_id), None)
        if step is None:
            step = AgentStep(id=step_id, role=role)
            steps.append(step)
        step.status = StepStatus.RUNNING
        step.attempt += 1
        step.started_at = utc_now()
        step.finished_at = step.duration_ms = step.error = step.restart = None
        step.thread_id = None  # the new attempt's, once its thread starts
        step.commands, step.patches, step.tokens = [], [], TokenUsage()
        step.model, step.cost_usd = None, 0.0
        if also is not None:
            also(m)

    manifest = handle.update(begin, event="step.started", step=step_id)
    step = manifest.step(step_id)
    assert step is not None
    return step


@dataclass(frozen=True)
class StepOutcome:
    """What an agent step did, as recorded in its manifest entry."""

    thread_id: str | None
    prompt_sha256: str | None
    commands: list[CommandRecord]
    patches: list[PatchRecord]
    tokens: TokenUsage
    duration_ms: int
    library: list[str] = field(default_factory=list)  # entries used, name@version
    model: str | None = None
    """The model the agent call used; None when the step made no call."""


def finish_step(
    handle: RunHandle,
    step_id: str,
    outcome: StepOutcome,
    *,
    artifacts: list[ArtifactRecord],
    task_run_id: str | None = None,
    also: Callable[[RunManifest], None] | None = None,
) -> None:
    """Record a step done with its outcome and output artifacts (the first is its output),
    and ``also`` (e.g. the subtask's commit), in one update: the step is done exactly
    when its artifacts are recorded.

    The call's cost is priced now, with the price table in force (a later change of
    prices does not rewrite what a run cost).
    """
    cost = call_cost(
        load_price_table(handle.workspace.settings.prices_file), outcome.model, outcome.tokens
    )

    def finish(m: RunManifest) -> None:
        step = m.step(step_id)
        assert step is not None, step_id
        add_artifacts(m, artifacts)
        step.status = StepStatus.SUCCEEDED
        step.thread_id = outcome.thread_id
        step.prompt_sha256 = outcome.prompt_sha256
        step.commands, step.patches, step.tokens = outcome.commands, outcome.patches, outcome.tokens
        step.library = outcome.library
        step.duration_ms = outcome.duration_ms
        step.model, step.cost_usd = outcome.model, cost
        step.output_artifact = artifacts[0].name
        step.task_run_id = task_run_id or step.task_run_id
        step.finished_at = utc_now()
        if also is not None:
            also(m)

    handle.update(
        finish, event="step.succeeded", step=step_id, artifacts=[a.name for a in artifacts]
    )


def fail_step(
    handle: RunHandle,
    phase: PhaseName,
    step_id: str,
    error: BaseException,
    *,
    also: Callable[[RunManifest], None] | None = None,
) -> None:
    """Record a step failed with the error's message, and ``also``, in one update."""
    message = str(error) or type(error).__name__

    def fail(m: RunManifest) -> None:
        step = m.step(step_id)
        if step is not None:
            step.status = StepStatus.FAILED
            step.error = message
            step.finished_at = utc_now()
        m.errors.append(
            ErrorRecord(
                at=utc_now(),
                phase=phase,
                step_id=step_id,
                type=type(error).__name__,
                message=message,
            )
        )
        if also is not None:
            also(m)

    handle.update(fail, event="step.failed", step=step_id, error=message)
