"""Approval gates: a policy decides, or the flow run pauses for a person (UI or CLI).

A person's gate is ``pause_flow_run`` with a typed input form whose description shows
what is decided (the plan, the diff stat, the command), and always a timeout: a gate
left to it is recorded ``expired`` (its own decision, reason ``timeout``), never a
rejection. Next to the pause, the flow run
gets two small inputs (:mod:`schemas.inbox`), so ``flows.approvals`` can list what
waits, and explain what was decided, from any machine with the Prefect API:

- ``orchestrator-gate-<approval id>``: a :class:`~schemas.GateNotice` (run, gate,
  summary), written before the pause;
- ``orchestrator-decision-<approval id>``: a :class:`~schemas.DecisionNotice`, once decided.

A tool that resumes the pause (the CLI) first writes ``orchestrator-resume-<approval
id>`` (:class:`~schemas.ResumeNotice`): the form has no channel field, so the channel
recorded is ``cli`` when that notice announced the submitted decision, else ``ui``.

The pause key is the approval id, so the form's own inputs are
``paused-<approval id>-description``, ``-schema`` and ``-response``. What a decision
submits through the form is :func:`form_input`; what the gate reads back, ``_decision_of``.

Codex's exec/patch requests that the command policy does not decide reach a person the
same way (:class:`CommandEscalation`): the flow run that makes the agent call pauses,
one request at a time.

A budget gate is one of these gates with a form of its own (:mod:`flows._budget_gate`).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import anyio
from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, MissingContextError, PrefectHTTPStatusError
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from prefect.input.actions import acreate_flow_run_input, aread_flow_run_input
from prefect.logging.loggers import get_logger
from prefect.runtime import flow_run, task_run
from prefect.states import Running
from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.config import JsonDict

from agents.approvals import ApprovalAnswer, ApprovalRequest
from orchestrator.approvals import (
    command_approval_id,
    command_markdown,
    command_summary,
    gate_summary,
    policy_decision,
    record_decision,
    request_approval,
    timeout_decision,
)
from orchestrator.exceptions import InvalidInputError
from orchestrator.lifecycle import RunHandle
from schemas import (
    Approval,
    ApprovalDecision,
    Channel,
    Decision,
    DecisionNotice,
    Gate,
    GateMode,
    GateNotice,
    ResumeNotice,
)

from .notifications import while_notifying

POLL_SECONDS = 1

REASON_REQUIRED = "a reason is required to reject: say why in the Reason field"
_NOT_BLANK = r"\S"
_BLANK = r"^\s*$"
_REASON_TO_REJECT = "reason to reject"
_REASON_ON_REJECT: JsonDict = {
    # The server and the UI check the form against this schema and show jsonschema's
    # words: a rejection without a reason fails as "'reason to reject' is a required
    # property", which the UI shows under the Reason field (it files a "required" error
    # under the first word of the missing name).
    "if": {
        "properties": {"decision": {"const": "reject"}, "reason": {"pattern": _BLANK}},
        "required": ["decision"],
    },
    "then": {"required": [_REASON_TO_REJECT]},
}


class ApprovalForm(RunInput):
    """The form an approver fills in to resume a paused run.

    No channel field: the gate knows whether the decision came from the UI or a tool
    (:class:`~schemas.ResumeNotice`), and the approver cannot say otherwise.
    """

    model_config = ConfigDict(json_schema_extra={"allOf": [_REASON_ON_REJECT]})

    # a person approves or rejects; ``expired`` is the gate's own when nobody decided
    decision: Literal[Decision.APPROVE, Decision.REJECT] = Field(
        title="Decision", description="approve or reject"
    )
    approver: str = Field(
        title="Approver", description="Your name.", min_length=1, pattern=_NOT_BLANK
    )
    reason: str = Field(
        default="", title="Reason", description="Why; required to reject.", max_length=4000
    )

    @model_validator(mode="after")
    def _reason_on_reject(self) -> ApprovalForm:
        if self.decision is Decision.REJECT and not self.reason.strip():
            raise ValueError(REASON_REQUIRED)
        return self


FORM_CHANNELS = (Channel.UI, Channel.CLI)
"""The channels a decision submitted through the form can come from."""


def form_input(decision: ApprovalDecision) -> dict[str, str]:
    """The run input that resumes a gate's pause with ``decision``, as the form submits it.

    Raises:
        InvalidInputError: the decision does not come from a person (channel ``ui`` or
            ``cli``): the policy and timeouts decide inside the flow run, never by
            resuming; or it is a rejection without a reason.
    """
    if decision.channel not in FORM_CHANNELS:
        raise InvalidInputError(
            f"a gate is resumed by a person (channel ui or cli), not {decision.channel.value}"
        )
    try:
        form = ApprovalForm(
            decision=decision.decision, approver=decision.approver, reason=decision.reason
        )
    except ValidationError:
        raise InvalidInputError(REASON_REQUIRED) from None
    return form.model_dump(mode="json", include={"decision", "approver", "reason"})


def resume_notice(decision: ApprovalDecision) -> ResumeNotice:
    """What a tool announces before it resumes a pause with ``decision`` (its channel)."""
    return ResumeNotice(
        channel=decision.channel,
        decision=decision.decision,
        approver=decision.approver,
        reason=decision.reason,
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
    summary: str | None = None,
    sandbox_exit: bool = False,
    form: type[ApprovalForm] = ApprovalForm,
) -> Approval:
    """Ask for the gate's decision (policy or person) and record it; asked once per run.

    Args:
        handle: The run.
        approval_id: Unique within the run; also the pause key.
        gate: Which gate.
        shown: The markdown the approver sees (recorded with its hash).
        mode: ``auto``: the policy approves; ``required``: a person decides.
        timeout_seconds: How long a person has; then the gate expires (``expired``).
        policy_source: Where the policy came from (recorded with a policy decision).
        summary: One line for lists of waiting runs; by default from the manifest.
        sandbox_exit: Approving lets a command run outside the sandbox (recorded as
            ``left_sandbox`` when approved).
        form: The form a person fills in (:class:`flows._budget_gate.BudgetForm` at a
            budget gate).
    """
    approval = request_approval(
        handle,
        approval_id,
        gate,
        shown=shown,
        timeout_seconds=timeout_seconds,
        flow_run_id=current_flow_run_id(),
    )
    if approval.decision is not None:
        return approval
    decision = policy_decision(mode, policy_source)
    if decision is None:
        notice = GateNotice(
            task_id=handle.task_id,
            run_id=handle.run_id,
            gate=gate,
            approval_id=approval_id,
            # read by other processes and sent in notifications: never a secret value
            summary=handle.workspace.redactor.redact(
                summary if summary is not None else gate_summary(handle.read(), gate)
            ),
            requested_at=approval.requested_at,
            timeout_seconds=timeout_seconds,
            env=handle.read().env,
        )
        decision = await _ask_a_person(handle, notice, shown, form)
    decided = record_decision(handle, approval_id, decision, sandbox_exit=sandbox_exit)
    await _publish_decision(approval_id, decision)
    return decided


async def _ask_a_person(
    handle: RunHandle, notice: GateNotice, shown: str, form: type[ApprovalForm] = ApprovalForm
) -> ApprovalDecision:
    """Pause this flow run until a person decides, or the gate's timeout expires."""
    logger = _logger()
    await _create_input(GateNotice.input_key(notice.approval_id), notice.model_dump(mode="json"))
    logger.info(
        "waiting up to %ss for a decision on %s of %s: resume this flow run in the UI, or "
        "'orchestrator approve %s' / 'orchestrator reject %s --reason ...'",
        notice.timeout_seconds,
        notice.approval_id,
        handle.label,
        handle.run_id,
        handle.run_id,
    )
    try:
        submitted = await while_notifying(
            notice,
            lambda: apause_flow_run(
                wait_for_input=form.with_initial_data(description=shown),
                timeout=notice.timeout_seconds,
                poll_interval=POLL_SECONDS,
                key=notice.approval_id,
            ),
            warn_before=handle.workspace.settings.gate_warning_seconds,
        )
    except ValidationError:  # the server checks the form's schema; this is a last guard
        return ApprovalDecision(
            decision=Decision.REJECT,
            approver="unknown",
            reason="an invalid decision form was submitted",
            channel=Channel.UI,
        )
    except FlowPauseTimeout:
        logger.warning(
            "no decision on %s within %ss: expired",
            notice.approval_id,
            notice.timeout_seconds,
        )
        await _running_again()
        return timeout_decision()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await _running_again()
            record_decision(handle, notice.approval_id, timeout_decision())
            await _publish_decision(notice.approval_id, timeout_decision())
        raise
    return await _decision_of(submitted, notice.approval_id)


async def _decision_of(form: ApprovalForm, approval_id: str) -> ApprovalDecision:
    """The decision a submitted form makes; its channel is ``cli`` when the CLI announced
    exactly this decision (:class:`~schemas.ResumeNotice`), else ``ui``."""
    announced = await _read_input(ResumeNotice.input_key(approval_id))
    try:
        notice = ResumeNotice.model_validate(announced) if announced is not None else None
    except ValidationError:
        notice = None
    by_tool = notice is not None and notice.describes(form.decision, form.approver, form.reason)
    return ApprovalDecision(
        decision=form.decision,
        approver=form.approver.strip(),
        reason=form.reason.strip(),
        channel=notice.channel if notice is not None and by_tool else Channel.UI,
    )


async def _running_again() -> None:
    """After a pause timed out, put the flow run back to Running so it can finish cleanly.

    Only from Paused (or Failed: the server fails a run whose expired pause someone tried
    to resume); a run being cancelled is left to its cancellation.
    """
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    async with get_client() as client:
        state = (await client.read_flow_run(UUID(flow_run_id))).state
        if state is not None and state.type in (StateType.PAUSED, StateType.FAILED):
            await client.set_flow_run_state(flow_run_id, Running(), force=True)


async def _publish_decision(approval_id: str, decision: ApprovalDecision) -> None:
    notice = DecisionNotice.of(decision)
    await _create_input(DecisionNotice.input_key(approval_id), notice.model_dump(mode="json"))


async def _read_input(key: str) -> object:
    """A flow run input of this flow run; None when it does not exist."""
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return None
    return await aread_flow_run_input(key, flow_run_id=UUID(flow_run_id))


async def _create_input(key: str, value: dict[str, Any]) -> None:
    """A flow run input of this flow run; kept as it is when a retry writes it again."""
    if current_flow_run_id() is None:
        return
    try:
        await acreate_flow_run_input(key=key, value=value)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code != 409:
            raise


# -- codex's exec/patch requests ----------------------------------------------------


class CommandEscalation:
    """An approver that asks a person by pausing the current flow run.

    Used as the ``escalate`` hook of :class:`agents.approvals.PolicyApprover` for the
    requests its policy does not decide. One request is asked at a time per instance
    (one instance per phase flow run): two pauses at once in one flow run would clash.
    Outside a flow run there is no one to ask, and the request is denied.
    """

    def __init__(self, handle: RunHandle, *, timeout_seconds: int, policy_source: str) -> None:
        self.handle = handle
        self.timeout_seconds = timeout_seconds
        self.policy_source = policy_source
        self._lock = anyio.Lock()

    async def __call__(self, request: ApprovalRequest) -> ApprovalAnswer:
        if FlowRunContext.get() is None:
            return ApprovalAnswer(approved=False, reason="no flow run to ask a person in: denied")
        command = request.command_text if request.kind == "exec" else ""
        cwd = str(request.cwd) if request.cwd else None
        shown = command_markdown(
            self.handle,
            command=command,
            cwd=cwd,
            kind=request.kind,
            justification=request.reason,
            files=request.files,
            asked_by=task_run.get_name(),
        )
        summary = command_summary(command or ", ".join(request.files), cwd, kind=request.kind)
        async with self._lock:
            approval = await approval_gate(
                self.handle,
                command_approval_id(request.call_id),
                Gate.COMMAND,
                shown=shown,
                mode=GateMode.REQUIRED,
                timeout_seconds=self.timeout_seconds,
                policy_source=self.policy_source,
                summary=summary,
                sandbox_exit=request.kind == "exec",
            )
        return answer_of(approval)


def answer_of(approval: Approval) -> ApprovalAnswer:
    """codex's answer for a decided command gate; the model sees the reason of a denial."""
    by = f"{approval.approver} ({approval.channel})"
    if approval.decision is Decision.APPROVE:
        return ApprovalAnswer(approved=True, reason=f"approved by {by}")
    if approval.decision is Decision.EXPIRED:
        return ApprovalAnswer(
            approved=False,
            reason=f"no decision within {approval.timeout_seconds}s: denied (timeout)",
        )
    return ApprovalAnswer(approved=False, reason=f"denied by {by}: {approval.reason}")


def current_flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def _logger() -> Any:
    """The run logger when in a flow or task run, else this module's logger."""
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger(__name__)
