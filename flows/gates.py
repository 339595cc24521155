"""Approval gates: a policy decides, or the flow run pauses for a person (UI or CLI).

A person's gate is ``pause_flow_run`` with a typed input form whose description shows
what is decided (the plan, the diff stat, the command), and always a timeout: its
expiry counts as a rejection with reason ``timeout``. Next to the pause, the flow run
gets a small input ``orchestrator-gate-<key>`` naming the run and the gate, so
``orchestrator approvals`` can list what waits from any machine with the Prefect API.
"""

from __future__ import annotations

from typing import Literal

from prefect.client.orchestration import get_client
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from prefect.input.actions import acreate_flow_run_input
from prefect.states import Running
from pydantic import ConfigDict, Field

from orchestrator.approvals import (
    policy_decision,
    record_decision,
    request_approval,
    timeout_decision,
)
from orchestrator.lifecycle import RunHandle
from schemas import Approval, ApprovalDecision, Channel, Decision, Gate, GateMode

from ._runtime import current_flow_run_id, run_logger

GATE_INPUT_PREFIX = "orchestrator-gate-"
POLL_SECONDS = 1

_REASON_ON_REJECT = {
    "if": {"properties": {"decision": {"const": "reject"}}, "required": ["decision"]},
    "then": {"properties": {"reason": {"minLength": 1}}, "required": ["reason"]},
}


class ApprovalForm(RunInput):
    """The form an approver fills in to resume a paused run."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_REASON_ON_REJECT]})

    decision: Decision = Field(title="Decision", description="approve or reject")
    approver: str = Field(title="Approver", description="Your name.", min_length=1)
    reason: str = Field(default="", title="Reason", description="Required to reject.")
    channel: Literal["ui", "cli"] = Field(
        default="ui", title="Channel", description="Set by the tool that resumes; leave it."
    )


async def approval_gate(
    handle: RunHandle,
    approval_id: str,
    gate: Gate,
    *,
    shown: str,
    mode: GateMode,
    timeout_seconds: int,
    policy_source: str,
) -> Approval:
    """Ask for the gate's decision (policy or person) and record it; asked once per run."""
    flow_run_id = current_flow_run_id()
    approval = request_approval(
        handle,
        approval_id,
        gate,
        shown=shown,
        timeout_seconds=timeout_seconds,
        flow_run_id=flow_run_id,
    )
    if approval.decision is not None:
        return approval
    decision = policy_decision(mode, policy_source)
    if decision is None:
        decision = await _ask_a_person(handle, approval_id, gate, shown, timeout_seconds)
    return record_decision(handle, approval_id, decision)


async def _ask_a_person(
    handle: RunHandle, approval_id: str, gate: Gate, shown: str, timeout_seconds: int
) -> ApprovalDecision:
    logger = run_logger()
    await acreate_flow_run_input(
        key=GATE_INPUT_PREFIX + approval_id,
        value={
            "task_id": handle.task_id,
            "run_id": handle.run_id,
            "gate": gate.value,
            "approval_id": approval_id,
        },
    )
    logger.info(
        "waiting up to %ss for a decision on %s of %s: resume this flow run in the UI, or "
        "'orchestrator approve %s'",
        timeout_seconds,
        approval_id,
        handle.label,
        handle.run_id,
    )
    try:
        form = await apause_flow_run(
            wait_for_input=ApprovalForm.with_initial_data(description=shown),
            timeout=timeout_seconds,
            poll_interval=POLL_SECONDS,
            key=approval_id,
        )
    except FlowPauseTimeout:
        logger.warning("no decision on %s within %ss: rejected", approval_id, timeout_seconds)
        await _running_again()
        return timeout_decision()
    return ApprovalDecision(
        decision=form.decision,
        approver=form.approver,
        reason=form.reason,
        channel=Channel(form.channel),
    )


async def _running_again() -> None:
    """After a pause timed out, put the flow run back to Running so it can finish cleanly."""
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    async with get_client() as client:
        await client.set_flow_run_state(flow_run_id, Running(), force=True)
