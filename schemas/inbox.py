"""What a gate that waits for a person publishes, and what the approvals inbox lists.

A gate that needs a person pauses its flow run (the pause key is the approval id) and
writes two small flow run inputs, so any process that reaches the Prefect API can list
what waits and explain what was decided, with nothing local read:

- ``orchestrator-gate-<approval id>``: a :class:`GateNotice`, written before the pause;
- ``orchestrator-decision-<approval id>``: a :class:`DecisionNotice`, once decided;
- ``orchestrator-resume-<approval id>``: a :class:`ResumeNotice`, written by a tool
  (the CLI) just before it resumes the pause, so the gate records that channel; a
  decision without one (or with one for another decision) came from the UI form.

The notices are read by other processes, possibly of another version of the
orchestrator, so they ignore fields they do not know (a newer writer may add some)
instead of refusing them. :class:`WaitingGate` and :class:`DecidedGate` are what
``flows.approvals`` returns: a notice together with the flow run that holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ._base import SafeId, UtcDatetime, utc_now
from .approval import ApprovalDecision, Channel, Decision, Gate


class _Notice(BaseModel):
    """A document another process reads: unknown fields are ignored, values are frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    INPUT_PREFIX: ClassVar[str]

    @classmethod
    def input_key(cls, approval_id: str) -> str:
        """The key of this notice's flow run input for gate ``approval_id``."""
        return cls.INPUT_PREFIX + approval_id


class GateNotice(_Notice):
    """What a paused flow run waits for: the flow run input ``orchestrator-gate-<id>``."""

    INPUT_PREFIX: ClassVar[str] = "orchestrator-gate-"

    task_id: SafeId
    run_id: SafeId
    gate: Gate
    approval_id: SafeId = Field(description="The gate within its run; also the pause key.")
    summary: str = Field(default="", description="One line for lists of waiting gates.")
    requested_at: UtcDatetime
    timeout_seconds: int = Field(ge=1, description="How long a person has to decide.")
    env: SafeId | None = Field(
        default=None, description="The run's environment (unknown in older notices)."
    )

    @property
    def label(self) -> str:
        """``<task id>/<run id>``: how the run is named to people."""
        return f"{self.task_id}/{self.run_id}"


class DecisionNotice(_Notice):
    """How a gate was decided: the flow run input ``orchestrator-decision-<id>``."""

    INPUT_PREFIX: ClassVar[str] = "orchestrator-decision-"

    decision: Decision
    approver: str
    reason: str = ""
    channel: Channel
    decided_at: UtcDatetime

    @classmethod
    def of(
        cls, decision: ApprovalDecision, *, decided_at: datetime | None = None
    ) -> DecisionNotice:
        """The notice of ``decision``, decided now unless ``decided_at`` says when."""
        return cls(
            decision=decision.decision,
            approver=decision.approver,
            reason=decision.reason,
            channel=decision.channel,
            decided_at=decided_at or utc_now(),
        )


class ResumeNotice(_Notice):
    """Which tool resumes a pause, with what: the flow run input ``orchestrator-resume-<id>``.

    The approval form has no channel field for an approver to change: the gate takes
    the channel from this notice when its decision is the one submitted.
    """

    INPUT_PREFIX: ClassVar[str] = "orchestrator-resume-"

    channel: Channel
    decision: Decision
    approver: str
    reason: str = ""

    def describes(self, decision: Decision, approver: str, reason: str) -> bool:
        """Whether the submitted form is the one this notice announced."""
        return (self.decision, self.approver, self.reason) == (decision, approver, reason)


class WaitingGate(BaseModel):
    """One gate a paused flow run waits at, as the Prefect API shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow_run_id: UUID
    flow_run_name: str
    notice: GateNotice
    paused_at: UtcDatetime
    expires_at: UtcDatetime | None = Field(description="When the pause times out.")
    ui_url: str | None = Field(default=None, description="The paused flow run in the UI.")
    description: str | None = Field(
        default=None, description="The markdown the gate's form shows, when it was read."
    )

    @property
    def expired(self) -> bool:
        """Whether the pause has timed out (a decision now is refused)."""
        return self.expires_at is not None and self.expires_at <= utc_now()

    def matches(self, run: str) -> bool:
        """Named by ``run``: its run id, ``<task>/<run>``, or its flow run id."""
        return run in (self.notice.run_id, self.notice.label, str(self.flow_run_id))

    def is_gate(self, gate: str | None) -> bool:
        """Named by ``gate``: its kind (``plan``, ``command`` ...) or approval id; any: None."""
        return gate is None or gate in (self.notice.gate.value, self.notice.approval_id)


class DecidedGate(BaseModel):
    """A gate of a run that was decided (by a person, the policy or its timeout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow_run_id: UUID
    notice: GateNotice
    decision: DecisionNotice
