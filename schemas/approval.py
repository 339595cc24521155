"""Approval gates: what a person (or the policy) decided, and how."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from ._base import SafeId, Sha256, StrictModel, UtcDatetime


class Gate(StrEnum):
    SPEC = "spec"
    PLAN = "plan"
    HANDOVER = "handover"
    DIFF_BUDGET = "diff-budget"
    COMMAND = "command"
    BUDGET = "budget"


class Decision(StrEnum):
    """What decided a gate: a person or the policy approves or rejects; a gate left to its
    deadline ``expired`` (recorded as its own decision, never a rejection)."""

    APPROVE = "approve"
    REJECT = "reject"
    EXPIRED = "expired"


class Channel(StrEnum):
    UI = "ui"
    CLI = "cli"
    POLICY = "policy"
    TIMEOUT = "timeout"


class ApprovalDecision(StrictModel):
    """What an approver submits; a reason is required on reject."""

    decision: Decision
    approver: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=4000)
    channel: Channel = Channel.CLI

    @model_validator(mode="after")
    def _reason_on_reject(self) -> ApprovalDecision:
        if self.decision is Decision.REJECT and not self.reason.strip():
            raise ValueError("a reason is required to reject")
        if (self.decision is Decision.EXPIRED) != (self.channel is Channel.TIMEOUT):
            raise ValueError("only a timeout expires a gate (decision expired, channel timeout)")
        return self


class Approval(StrictModel):
    """One gate of one run: what was asked, and the decision once made."""

    id: SafeId = Field(description="Unique within the run, e.g. 'plan' or 'command-<call id>'.")
    gate: Gate
    shown: str = Field(description="The markdown the approver saw.")
    shown_sha256: Sha256
    requested_at: UtcDatetime
    timeout_seconds: int = Field(ge=1)
    flow_run_id: str | None = None
    decided_at: UtcDatetime | None = None
    decision: Decision | None = None
    approver: str | None = None
    reason: str | None = None
    channel: Channel | None = None
    left_sandbox: bool = Field(
        default=False,
        description="True when this approval let a command run outside codex's sandbox, "
        "with the worker's access (an approved exec escalation).",
    )

    @property
    def pending(self) -> bool:
        return self.decision is None
