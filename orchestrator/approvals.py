"""Approval gates as manifest changes: what was asked, and the one decision each gets.

Also what each gate shows an approver (markdown that needs nothing else open: the plan
as a table, the diff stat, the command and its cwd) and its one-line summary for lists.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import PurePath

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
from .literal import md_cell, md_code, md_fence, md_text, terminal_text

TIMEOUT_REASON = "timeout"
COMMAND_PREFIX = "command-"
_PREFECT_KEY_UNSAFE = re.compile(r"[^a-z0-9-]+")
_MAX_ID = 64


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


def record_decision(
    handle: RunHandle, approval_id: str, decision: ApprovalDecision, *, sandbox_exit: bool = False
) -> Approval:
    """Record the one decision of a gate; a second decision raises :class:`ApprovalError`.

    ``sandbox_exit``: the gate asks to run a command outside the sandbox, so an approval
    is recorded as having let it leave (``left_sandbox``).
    """

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
        approval.left_sandbox = sandbox_exit and decision.decision is Decision.APPROVE
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
        left_sandbox=sandbox_exit and decision.decision is Decision.APPROVE,
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
    """The decision a gate's deadline stands for when nobody decided: ``expired`` (its own
    decision, not a rejection), reason ``timeout``."""
    return ApprovalDecision(
        decision=Decision.EXPIRED, approver=ACTOR, reason=TIMEOUT_REASON, channel=Channel.TIMEOUT
    )


def stopped_at_gate(gate: Gate, approval: Approval) -> tuple[RunStatus, str]:
    """How a run ends at a gate that was not approved: ``expired`` with its deadline when
    nobody decided in time, else ``rejected`` with who rejected it and why."""
    if approval.decision is Decision.EXPIRED:
        return RunStatus.EXPIRED, (
            f"{gate.value} expired: no decision within {approval.timeout_seconds} s"
        )
    return RunStatus.REJECTED, (
        f"{gate.value} rejected by {approval.approver} ({approval.channel}): {approval.reason}"
    )


def plan_markdown(handle: RunHandle, summary: str, rows: list[tuple[str, str, str, str]]) -> str:
    """What the plan gate shows: the plan as a table, then each subtask's acceptance and files.

    ``rows`` are (subtask id, title, acceptance, files). The table stays two columns wide
    because the Prefect UI's form shows tables unwrapped in a narrow dialog. Everything
    the planner wrote renders literally (:mod:`orchestrator.literal`).
    """
    table = "\n".join(
        f"| {md_code(sid, cell=True)} | {md_cell(title)} |" for sid, title, _, _ in rows
    )
    details = "\n".join(
        f"- {md_code(sid)}: must hold: {md_cell(acceptance) or '(not stated)'}; "
        f"files: {md_cell(files) or '(not stated)'}"
        for sid, _, acceptance, files in rows
    )
    return (
        f"## Approve the plan of {md_code(handle.label)}\n\n{md_text(summary)}\n\n"
        f"| subtask | title |\n|---|---|\n{table}\n\n{details}\n\n"
        "Approve to build these subtasks, one builder call each; reject (with a reason) to end "
        "the run without building anything."
    )


def findings_markdown(title: str, problems: list[str], effect: str) -> str:
    """What a check's gate shows (``spec``, ``diff-budget``): each problem, literally."""
    listed = "\n".join(f"- {md_text(problem)}" for problem in problems)
    return f"## {title}\n\n{listed}\n\n{effect}"


def spec_markdown(handle: RunHandle, problems: list[str]) -> str:
    """What the spec gate shows before the plan."""
    return findings_markdown(
        f"The target's specs of {md_code(handle.label)} need a look",
        problems,
        "The spec guard found these before any agent call. Approve to plan and build "
        "against the specs as they are; reject (with a reason) to end the run first.",
    )


def budget_markdown(handle: RunHandle, problems: list[str]) -> str:
    """What the diff-budget gate shows before the hand-over."""
    return findings_markdown(
        f"The change of {md_code(handle.label)} is over its diff budget",
        problems,
        "Approve to go on to the hand-over with a change this size; reject (with a reason) "
        "to end the run as rejected (the result branch stays for a look).",
    )


def handover_markdown(manifest: RunManifest, *, spec_problems: list[str] | None = None) -> str:
    """What the hand-over gate shows: result branch, tests, the review verdict, the diff stat,
    and code changed without a spec change."""
    result = manifest.result
    branch = result.branch if result else None
    stat = result.diff_stat if result else ""
    tests = {True: "passed", False: "FAILED", None: "not run"}[
        result.tests_passed if result else None
    ]
    verdict = (result.verdict if result else None) or "none"
    label = f"{manifest.task_id}/{manifest.run_id}"
    return (
        f"## Approve the hand-over of {md_code(label)}\n\n"
        f"| | |\n|---|---|\n| result branch | {md_code(str(branch), cell=True)} |\n"
        f"| tests | {tests} |\n| review verdict | {md_cell(str(verdict))} |\n\n"
        f"{md_fence(stat or '(no changes)')}"
        f"{_spec_section(spec_problems or [])}"
        "Approve to hand the result branch over; reject (with a reason) to end the run as "
        "rejected."
    )


def _spec_section(problems: list[str]) -> str:
    if not problems:
        return ""
    listed = "\n".join(f"- {md_text(problem)}" for problem in problems)
    return f"**Code changed without a spec change:**\n\n{listed}\n\n"


def command_approval_id(call_id: str | None) -> str:
    """The approval id of codex's request ``call_id``: ``command-<call id>``, always a safe id
    that Prefect also takes as a flow-run input key (lowercase letters, digits, dashes).

    Other characters become ``-`` and a short hash of the call id is added, so ``call_A``
    and ``call-a`` stay apart; an id too long is shortened to a hash of it. Without a call
    id: a random one.
    """
    if not call_id:
        return COMMAND_PREFIX + uuid.uuid4().hex[:16]
    digest = hashlib.sha256(call_id.encode()).hexdigest()
    cleaned = _PREFECT_KEY_UNSAFE.sub("-", call_id.lower()).strip("-")
    if cleaned != call_id:
        cleaned = f"{cleaned}-{digest[:8]}".lstrip("-")
    if len(COMMAND_PREFIX) + len(cleaned) > _MAX_ID:
        cleaned = digest[:32]
    return COMMAND_PREFIX + cleaned


def command_markdown(
    handle: RunHandle,
    *,
    command: str,
    cwd: str | None,
    kind: str = "exec",
    justification: str | None = None,
    files: list[str] | None = None,
    asked_by: str | None = None,
) -> str:
    """What a command gate shows: the command (or patch files), its cwd, and why it asks."""
    who = md_code(asked_by) if asked_by else "An agent"
    where = md_code(cwd, cell=True) if cwd else "(the agent's workspace)"
    rows = [("working directory", where)]
    if justification:
        rows.append(("why, says the agent", md_cell(justification)))
    if files:
        rows.append(("files", ", ".join(md_code(f, cell=True) for f in files)))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    body = md_fence(command, lang="sh") if command else ""
    if kind == "patch":
        ask = f"{who} asks to apply a patch that its policy does not approve by itself."
        effect = "Approve to apply it"
    else:
        ask = (
            f"{who} asks to run a command **outside its sandbox**. If you approve, the command "
            "runs with the worker's full access (every file and credential the orchestrator's "
            "user can reach), not only the workspace: nothing limits what it touches."
        )
        effect = "Approve only if you trust this command with the host"
    return (
        f"## Approve a command of {md_code(handle.label)}\n\n{ask}\n\n"
        f"{body}| | |\n|---|---|\n{table}\n\n{effect}; reject (with a reason) "
        "to deny it: the agent sees your reason and carries on without it."
    )


def gate_summary(manifest: RunManifest, gate: Gate) -> str:
    """One line on what a plan or hand-over gate decides, for lists of waiting runs."""
    if gate is Gate.PLAN:
        ids = [s.id for s in manifest.subtasks]
        return f"plan: {len(ids)} subtask{'s' if len(ids) != 1 else ''}: {', '.join(ids)}"
    if gate is Gate.SPEC:
        return "spec: the target's specs need a look before the plan"
    result = manifest.result
    if gate is Gate.DIFF_BUDGET and result is not None:
        return f"diff budget: the change on {result.branch} is over its budget"
    if gate is Gate.HANDOVER and result is not None:
        tests = {True: "tests passed", False: "tests FAILED", None: "tests not run"}
        return (
            f"hand-over of {result.branch} ({tests[result.tests_passed]}, "
            f"review: {result.verdict or 'none'})"
        )
    return gate.value


def command_summary(command: str, cwd: str | None, *, kind: str = "exec") -> str:
    """One line on what a command gate decides: the command, and the end of its cwd.

    An exec request says that it runs outside the sandbox, so a list of waiting gates
    says so too.
    """
    line = " ".join(terminal_text(command).split())
    line = line if len(line) <= 80 else line[:77] + "..."
    head = "patch" if kind == "patch" else "command OUTSIDE the sandbox"
    if not cwd:
        return f"{head}: {line}"
    parts = PurePath(cwd).parts
    where = ".../" + "/".join(parts[-2:]) if len(parts) > 3 else cwd
    return f"{head}: {line} (in {terminal_text(where)})"
