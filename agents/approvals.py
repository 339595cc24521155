"""Answers to codex's exec/patch approval requests: pluggable approvers and the policy one.

codex asks through an MCP elicitation before it runs a command outside its sandbox (or,
under ``untrusted``, most commands) or applies a patch it may not apply on its own. The
session turns each request into an :class:`ApprovalRequest` and awaits an
:class:`Approver`. Whatever happens, codex gets "approved" or "denied" (with a reason the
model sees): never "abort", which would leave the call hanging.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
from pydantic import BaseModel, ConfigDict, Field

from schemas import CommandPolicy

from .events import command_text

__all__ = [
    "ApprovalAnswer",
    "ApprovalKind",
    "ApprovalRecord",
    "ApprovalRequest",
    "Approver",
    "DenyAllApprover",
    "PolicyApprover",
]

logger = logging.getLogger(__name__)

ApprovalKind = Literal["exec", "patch"]


class ApprovalRequest(BaseModel):
    """What codex asks to do, as the approver sees it."""

    model_config = ConfigDict(frozen=True)

    kind: ApprovalKind
    command: list[str] = Field(default_factory=list, description="Exec: the argv codex runs.")
    cwd: Path | None = None
    changes: dict[str, Any] = Field(
        default_factory=dict, description="Patch: changes per absolute file path."
    )
    thread_id: str | None = None
    call_id: str | None = None
    request_id: int | str | None = Field(default=None, description="The tools/call it belongs to.")
    message: str = Field(default="", description="codex's question, for a person.")
    reason: str | None = Field(default=None, description="The model's justification, if any.")

    @property
    def command_text(self) -> str:
        return command_text(self.command)

    @property
    def files(self) -> list[str]:
        return sorted(self.changes)

    @classmethod
    def from_elicitation(cls, params: Mapping[str, Any]) -> ApprovalRequest:
        """Build from the raw params of codex's ``elicitation/create`` request."""
        kind: ApprovalKind = (
            "patch" if params.get("codex_elicitation") == "patch-approval" else "exec"
        )
        command = params.get("codex_command")
        changes = params.get("codex_changes")
        cwd = params.get("codex_cwd")
        return cls(
            kind=kind,
            command=[str(p) for p in command] if isinstance(command, list) else [],
            cwd=Path(cwd) if isinstance(cwd, str) and cwd else None,
            changes=dict(changes) if isinstance(changes, Mapping) else {},
            thread_id=_str_or_none(params.get("threadId")),
            call_id=_str_or_none(params.get("codex_call_id")),
            request_id=params.get("codex_mcp_tool_call_id"),
            message=str(params.get("message") or ""),
            reason=_str_or_none(params.get("codex_reason") or params.get("reason")),
        )


class ApprovalAnswer(BaseModel):
    """The decision: approved or denied, and why (the model sees the reason of a denial)."""

    model_config = ConfigDict(frozen=True)

    approved: bool
    reason: str = ""


class ApprovalRecord(BaseModel):
    """One approval request of a call and its answer."""

    model_config = ConfigDict(frozen=True)

    request: ApprovalRequest
    answer: ApprovalAnswer


class Approver(Protocol):
    """Decides one approval request. Must not raise; the session denies if it does."""

    async def __call__(self, request: ApprovalRequest) -> ApprovalAnswer: ...


class DenyAllApprover:
    """Denies everything: the default when no approver is configured."""

    def __init__(self, *, reason: str = "no approver is configured: denied") -> None:
        self._reason = reason

    async def __call__(self, request: ApprovalRequest) -> ApprovalAnswer:
        return ApprovalAnswer(approved=False, reason=self._reason)


class PolicyApprover:
    """Answers by :class:`schemas.CommandPolicy`.

    An exec request under codex's ``on-request`` policy asks to run a command OUTSIDE the
    sandbox with the worker's access, and no reading of a command line tells what the
    program will touch: under every policy a person decides it (through ``escalate``), or
    it is denied with ``no_person`` as the reason when no one can be asked.

    - ``patches_in_workspace``: approve a patch whose files (and move targets) all resolve
      inside ``workspace`` (realpath: symlinks and ``..`` followed); anything else goes to
      the person.
    - ``ask_person``: a person decides every request.
    - ``deny``: deny everything.

    An escalation that takes longer than ``timeout`` seconds, raises, or is missing is
    a denial.
    """

    def __init__(
        self,
        policy: CommandPolicy,
        *,
        workspace: Path,
        escalate: Approver | None = None,
        timeout: float = 600.0,
        no_person: str = "no person can be asked",
    ) -> None:
        self.policy = CommandPolicy(policy)
        self.workspace = Path(os.path.realpath(workspace))
        self.escalate = escalate
        self.timeout = timeout
        self.no_person = no_person

    async def __call__(self, request: ApprovalRequest) -> ApprovalAnswer:
        if self.policy is CommandPolicy.DENY:
            return ApprovalAnswer(approved=False, reason="denied by policy 'deny'")
        if request.kind == "patch" and self.policy is CommandPolicy.PATCHES_IN_WORKSPACE:
            outside = self.outside_workspace(request)
            if outside is None:
                return ApprovalAnswer(
                    approved=True, reason="every file of the patch is inside the workspace"
                )
            if self.escalate is None:
                return ApprovalAnswer(
                    approved=False, reason=f"denied by policy: {outside} is outside the workspace"
                )
        return await self._escalate(request)

    def outside_workspace(self, request: ApprovalRequest) -> str | None:
        """The first file a patch touches outside the workspace, or None."""
        base = request.cwd or self.workspace
        for path in _patch_paths(request):
            if not self._inside(base / Path(path).expanduser()):
                return path
        return None

    def _inside(self, path: Path) -> bool:
        resolved = Path(os.path.realpath(path))
        return resolved == self.workspace or self.workspace in resolved.parents

    async def _escalate(self, request: ApprovalRequest) -> ApprovalAnswer:
        if self.escalate is None:
            what = "an approved command would run outside the sandbox"
            if request.kind == "patch":
                what = "the patch is not one the policy approves"
            return ApprovalAnswer(approved=False, reason=f"{self.no_person} ({what}): denied")
        try:
            with anyio.fail_after(self.timeout):
                return await self.escalate(request)
        except TimeoutError:
            return ApprovalAnswer(
                approved=False, reason=f"no decision within {self.timeout:g}s: denied"
            )
        except Exception:
            logger.exception("the approval escalation failed; denying")
            return ApprovalAnswer(approved=False, reason="the escalation failed: denied")


def _patch_paths(request: ApprovalRequest) -> list[str]:
    """Every path a patch writes: its files, and where a change moves one to."""
    paths = list(request.files)
    for change in request.changes.values():
        # codex nests the change by kind: {"update": {"unified_diff": ..., "move_path": ...}}
        nested = [change, *change.values()] if isinstance(change, Mapping) else []
        moves = [n.get("move_path") for n in nested if isinstance(n, Mapping)]
        paths += [m for m in moves if isinstance(m, str) and m]
    return paths


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
