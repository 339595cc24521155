"""Approval gates as manifest changes: what was asked, and the one decision each gets."""

from __future__ import annotations

import hashlib

from schemas import (
    Approval,
    ApprovalDecision,
    Channel,
    Decision,
    Gate,
    GateMode,
    RunManifest,
    RunStatus,
    utc_now,
)

from .exceptions import ApprovalError
from .lifecycle import ACTOR, RunHandle

TIMEOUT_REASON = "timeout"


def request_approval(
    handle: RunHandle,
    approval_id: str,
    gate: Gate,
    *,
    shown: str,
    timeout_seconds: int,
    flow_run_id: str | None,
) -> Approval:
    """Record that ``gate`` asks for a decision (once; a resumed run gets the same record)."""
    manifest = handle.read()
    existing = manifest.approval(approval_id)
    if existing is not None and (existing.decision is not None or existing.shown == shown):
        if existing.decision is None and existing.flow_run_id != flow_run_id:
            return _rebind(handle, approval_id, flow_run_id)
        return existing
    approval = Approval(
        id=approval_id,
        gate=gate,
        shown=shown,
        shown_sha256=hashlib.sha256(shown.encode()).hexdigest(),
        requested_at=utc_now(),
        timeout_seconds=timeout_seconds,
        flow_run_id=flow_run_id,
    )

    def add(m: RunManifest) -> None:
        m.approvals = [a for a in m.approvals if a.id != approval_id] + [approval]
        m.status = RunStatus.PAUSED

    handle.update(add, event="approval.requested", approval=approval_id, gate=gate.value)
    return approval


def _rebind(handle: RunHandle, approval_id: str, flow_run_id: str | None) -> Approval:
    """A resumed run asks again from a new flow run: point the request at it."""

    def rebind(m: RunManifest) -> None:
        approval = m.approval(approval_id)
        assert approval is not None
        approval.flow_run_id = flow_run_id
        m.status = RunStatus.PAUSED

    manifest = handle.update(rebind, event="approval.requested", approval=approval_id)
    approval = manifest.approval(approval_id)
    assert approval is not None
    return approval


def record_decision(handle: RunHandle, approval_id: str, decision: ApprovalDecision) -> Approval:
    """Record the one decision of a gate; a second decision raises :class:`ApprovalError`."""

    def decide(m: RunManifest) -> None:
        approval = m.approval(approval_id)
        if approval is None:
            raise ApprovalError(
                f"run {handle.label} has no approval {approval_id!r}",
                run_id=handle.run_id,
                gate=approval_id,
            )
        if approval.decision is not None:
            raise ApprovalError(
                f"approval {approval_id!r} of run {handle.label} was already decided: "
                f"{approval.decision.value} by {approval.approver} ({approval.channel})",
                run_id=handle.run_id,
                gate=approval_id,
            )
        approval.decision = decision.decision
        approval.approver = decision.approver
        approval.reason = decision.reason or None
        approval.channel = decision.channel
        approval.decided_at = utc_now()
        if m.status is RunStatus.PAUSED:
            m.status = RunStatus.RUNNING

    manifest = handle.update(
        decide,
        event="approval.decided",
        approval=approval_id,
        decision=decision.decision.value,
        approver=decision.approver,
        channel=decision.channel.value,
        reason=decision.reason,
    )
    approval = manifest.approval(approval_id)
    assert approval is not None
    return approval


def policy_decision(mode: GateMode, source: str) -> ApprovalDecision | None:
    """The decision the policy takes by itself, or None when a person must decide."""
    if mode is GateMode.AUTO:
        return ApprovalDecision(
            decision=Decision.APPROVE,
            approver=ACTOR,
            reason=f"auto-approved by policy ({source})",
            channel=Channel.POLICY,
        )
    return None


def timeout_decision() -> ApprovalDecision:
    return ApprovalDecision(
        decision=Decision.REJECT, approver=ACTOR, reason=TIMEOUT_REASON, channel=Channel.TIMEOUT
    )


def plan_markdown(handle: RunHandle, summary: str, rows: list[tuple[str, str, str, str]]) -> str:
    """What the plan gate shows: the plan as a table."""
    table = "\n".join(
        f"| `{sid}` | {_cell(title)} | {_cell(acceptance)} | {_cell(files)} |"
        for sid, title, acceptance, files in rows
    )
    return (
        f"## Approve the plan of `{handle.label}`\n\n{_cell(summary)}\n\n"
        "| subtask | title | acceptance | files |\n|---|---|---|---|\n"
        f"{table}\n\nApprove to build these subtasks, one builder call each; reject (with a "
        "reason) to end the run without building anything."
    )


def handover_markdown(manifest: RunManifest) -> str:
    """What the hand-over gate shows: result branch, diff stat, tests and the verdict."""
    result = manifest.result
    branch = result.branch if result else None
    stat = result.diff_stat if result else ""
    tests = {True: "passed", False: "FAILED", None: "not run"}[
        result.tests_passed if result else None
    ]
    verdict = (result.verdict if result else None) or "none"
    return (
        f"## Approve the hand-over of `{manifest.task_id}/{manifest.run_id}`\n\n"
        f"| result branch | tests | review verdict |\n|---|---|---|\n"
        f"| `{branch}` | {tests} | {verdict} |\n\n"
        f"```\n{stat}\n```\n\nApprove to hand the result branch over; reject (with a reason) to "
        "end the run as rejected."
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
