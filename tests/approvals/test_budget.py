"""A token budget below what a run needs: the call that crosses it is interrupted during
its turn (on its token events) and the run pauses at a budget gate; raised, the step is
done again and the run completes; stopped, it ends with the budget as its reason.

Real parts: ``orchestrator run`` in a subprocess against a Prefect server, codex against
the replay provider (whose fixtures count 1200 input + 80 output tokens per response),
decisions from the CLI in other processes and from the REST API as the UI sends them.
"""

from __future__ import annotations

import pytest

from orchestrator.budget import wall_seconds
from schemas import (
    AgentStep,
    Channel,
    Decision,
    Gate,
    RunManifest,
    RunStatus,
    StepStatus,
    TokenUsage,
)

from .conftest import GateStack, PipelineRun
from .test_cli import flow_run_state, server_resume

pytestmark = [pytest.mark.integration]

LIMIT = 3000
RESPONSE_TOKENS = 1280
BUILDER_RESPONSES = 3  # examples/replay/sample/build-slugify.yaml


def slugify_requests(stack: GateStack) -> list[int]:
    """The steps of the first builder's script the model was asked for, in order."""
    return [r["step"] for r in stack.replay.requests() if r.get("script") == "build-slugify"]


def paused_in_first_builder(
    stack: GateStack, run: PipelineRun, gate: str, *, asked_before: int
) -> RunManifest:
    """The run waits at ``gate``: the first builder's turn was interrupted when its tokens
    crossed the limit, before the model was asked for the rest of its script; the second
    builder has not begun."""
    waiting = stack.wait_for_gate(run, gate)
    manifest = stack.manifest(run.run_id)
    plan, first = manifest.step("plan"), manifest.step("build-slugify")
    interrupted = manifest.step("build-slugify-interrupted-1")
    assert plan is not None and 0 < plan.tokens.total_tokens < LIMIT  # the planner stayed below
    assert first is not None and first.status is StepStatus.PENDING  # to be done again
    assert interrupted is not None and interrupted.status is StepStatus.FAILED
    assert interrupted.error is not None
    assert interrupted.error.startswith("interrupted by the budget: ")
    assert interrupted.model == "replay"
    assert RESPONSE_TOKENS <= interrupted.tokens.total_tokens < BUILDER_RESPONSES * RESPONSE_TOKENS
    asked = slugify_requests(stack)[asked_before:]
    assert 0 < len(asked) < BUILDER_RESPONSES, asked  # the turn stopped: not all responses
    assert manifest.step("build-truncate") is None  # no call after the one that crossed
    assert manifest.status is RunStatus.PAUSED
    used = manifest.usage.tokens.total_tokens
    assert used == plan.tokens.total_tokens + interrupted.tokens.total_tokens >= LIMIT
    assert waiting.notice.gate is Gate.BUDGET
    assert waiting.notice.summary == f"tokens budget reached: {used} used of {LIMIT}"
    approval = manifest.approval(gate)
    assert approval is not None and approval.pending
    assert f"tokens budget reached: {used} used of {LIMIT}" in approval.shown
    return manifest


def test_a_raised_budget_lets_the_run_complete(gate_stack: GateStack) -> None:
    before = len(slugify_requests(gate_stack))
    run = gate_stack.start("budget-tokens.yaml", "budget-raised")
    first = paused_in_first_builder(gate_stack, run, "budget-1", asked_before=before)
    used = first.usage.tokens.total_tokens

    # from the CLI: the gate's suggested limit (one more budget on top of what is used)
    approved = gate_stack.cli("approve", run.run_id, "--approver", "Grace", "--reason", "ok")
    assert approved.returncode == 0, approved.stderr
    # the first builder, done again, crosses the raised limit: a second gate, raised
    # from the form
    waiting = gate_stack.wait_for_gate(run, "budget-2")
    second = gate_stack.manifest(run.run_id)
    assert second.budget is not None and second.budget.limits.tokens == used + LIMIT
    assert "raised by Grace (cli) at budget-1" in second.budget.source
    form = {"decision": "approve", "approver": "Ada", "reason": ""}  # as the UI sends it
    resumed = server_resume(gate_stack, waiting.flow_run_id, {**form, "tokens": 1_000_000})
    assert resumed.status.value == "ACCEPT", resumed.details

    assert run.wait() == 0, run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.budget is not None and manifest.budget.limits.tokens == 1_000_000
    decided = [(a.id, a.decision, a.approver, a.channel) for a in manifest.approvals]
    assert decided == [
        ("plan", Decision.APPROVE, "orchestrator", Channel.POLICY),
        ("budget-1", Decision.APPROVE, "Grace", Channel.CLI),
        ("budget-2", Decision.APPROVE, "Ada", Channel.UI),
        ("handover", Decision.APPROVE, "orchestrator", Channel.POLICY),
    ]
    steps = [
        s
        for phase in ("plan", "build", "test", "review")
        for s in getattr(manifest.phases, phase).steps
    ]
    assert manifest.usage.tokens == sum((s.tokens for s in steps), TokenUsage())
    assert manifest.usage.tokens.total_tokens > 1_000  # tester and reviewer ran too
    redone = manifest.step("build-slugify")
    assert redone is not None and redone.status is StepStatus.SUCCEEDED and redone.attempt >= 2
    assert "budget: tokens 1000000 (" in gate_stack.cli("show", run.run_id).stdout


def test_a_run_stopped_at_its_budget_ends_rejected_with_the_budget_as_reason(
    gate_stack: GateStack,
) -> None:
    before = len(slugify_requests(gate_stack))
    run = gate_stack.start("budget-tokens.yaml", "budget-stopped")
    manifest = paused_in_first_builder(gate_stack, run, "budget-1", asked_before=before)
    used = manifest.usage.tokens.total_tokens

    stopped = gate_stack.cli("reject", run.run_id, "--reason", "too dear", "--approver", "Ada")
    assert stopped.returncode == 0, stopped.stderr

    assert run.wait() == 1, run.output()
    reason = f"tokens budget reached: {used} used of {LIMIT}; stopped by Ada (cli): too dear"
    assert f"was rejected: {reason}" in run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert (manifest.status, manifest.status_reason) == (RunStatus.REJECTED, reason)
    assert manifest.step("build-truncate") is None
    assert manifest.phases.test.status is StepStatus.PENDING
    gate = manifest.approval("budget-1")
    assert gate is not None and (gate.decision, gate.reason) == (Decision.REJECT, "too dear")
    assert flow_run_state(gate_stack, run.run_id) == ("CANCELLED", "Rejected")


def test_a_wall_time_budget_pauses_the_run_and_the_wait_does_not_count(
    gate_stack: GateStack,
) -> None:
    run = gate_stack.start("budget-wall.yaml", "budget-wall")
    waiting = gate_stack.wait_for_gate(run, "budget-1")
    assert waiting.notice.summary.startswith("wall_seconds budget reached: ")
    assert waiting.notice.summary.endswith(" used of 1s")
    paused = gate_stack.manifest(run.run_id)
    assert paused.status is RunStatus.PAUSED
    assert all(s.status is not StepStatus.RUNNING for p in PHASES for s in steps_of(paused, p))

    form = {"decision": "approve", "approver": "Ada", "reason": "", "wall_seconds": 3600}
    resumed = server_resume(gate_stack, waiting.flow_run_id, form)
    assert resumed.status.value == "ACCEPT", resumed.details

    assert run.wait() == 0, run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.budget is not None and manifest.budget.limits.wall_seconds == 3600
    assert "raised by Ada (ui) at budget-1" in manifest.budget.source
    # whichever call it came before: one budget gate, the run's other gates as usual
    assert sorted(a.id for a in manifest.approvals) == ["budget-1", "handover", "plan"]
    gate = manifest.approval("budget-1")
    assert gate is not None and gate.decided_at is not None and manifest.finished_at
    # the wall time `show` reports leaves out the time the run waited at budget-1
    counted = int(wall_seconds(manifest))
    waited = (gate.decided_at - gate.requested_at).total_seconds()
    assert counted <= (manifest.finished_at - manifest.created_at).total_seconds() - waited
    assert (
        f"wall time: {counted}s (without waits for a person)"
        in gate_stack.cli("show", run.run_id).stdout
    )


PHASES = ("plan", "build", "test", "review")


def steps_of(manifest: RunManifest, phase: str) -> list[AgentStep]:
    steps: list[AgentStep] = getattr(manifest.phases, phase).steps
    return steps


def test_on_app_server_the_crossing_turn_is_interrupted_too(gate_stack: GateStack) -> None:
    """The same budget on the app-server backend (``turn/interrupt``); stopped at the gate."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import CodexServerSettings
    from devstack.replay import replay_config

    with temporary_settings(updates={PREFECT_API_URL: gate_stack.server.api_url}):
        config = replay_config(gate_stack.replay.url, backend="app-server")
        CodexServerSettings.from_config(config).save("app-server", overwrite=True)
    before = len(slugify_requests(gate_stack))
    run = gate_stack.start("budget-tokens.yaml", "budget-appserver", codex_block="app-server")
    manifest = paused_in_first_builder(gate_stack, run, "budget-1", asked_before=before)
    interrupted = manifest.step("build-slugify-interrupted-1")
    assert interrupted is not None and interrupted.backend == "app-server"

    stopped = gate_stack.cli("reject", run.run_id, "--reason", "enough", "--approver", "Ada")
    assert stopped.returncode == 0, stopped.stderr
    assert run.wait() == 1, run.output()
    assert gate_stack.manifest(run.run_id).status is RunStatus.REJECTED
