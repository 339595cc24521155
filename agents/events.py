"""Typed ``codex/event`` notifications: the progress stream of a codex call.

codex sends one notification method, ``codex/event``, with params
``{"_meta": {"requestId", "threadId"}, "id": <turn id>, "msg": {"type": ..., ...}}``.
:func:`parse_event` turns each into one of the models below; types we do not model
become :class:`OtherEvent` (type only, no payload). Events are data from an MCP peer,
so unknown fields are ignored rather than refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from schemas import TokenUsage

from ._tool_calls import TOOL_CALL, TOOL_OUTPUT, command_text, tool_fields

__all__ = [
    "AgentMessage",
    "ApprovalRequested",
    "CodexEvent",
    "ErrorEvent",
    "EventCallback",
    "ExecCommandBegin",
    "ExecCommandEnd",
    "OtherEvent",
    "PatchApplyBegin",
    "PatchApplyEnd",
    "SessionConfigured",
    "TaskComplete",
    "TaskStarted",
    "TokenCount",
    "ToolCall",
    "ToolOutput",
    "TurnAborted",
    "TurnDiff",
    "WarningEvent",
    "command_text",
    "parse_event",
    "tool_item_event",
]

NOISE_TYPES = frozenset(
    {
        "item_started",
        "item_completed",
        "exec_command_output_delta",
        "agent_message_delta",
        "agent_message_content_delta",
        "agent_reasoning_delta",
        "agent_reasoning_raw_content_delta",
        "reasoning_content_delta",
        "reasoning_raw_content_delta",
    }
)
"""Streaming fragments and duplicates of other events; dropped before anyone sees them."""

MAX_OUTPUT_CHARS = 64_000
"""Command output kept per event: the end of it (where test summaries are)."""


class CodexEvent(BaseModel):
    """One ``codex/event`` notification."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str] = ""

    type: str
    request_id: int | str | None = Field(default=None, description="The tools/call it belongs to.")
    thread_id: str | None = None
    turn_id: str | None = None


class SessionConfigured(CodexEvent):
    TYPE = "session_configured"
    model: str | None = None
    cwd: str | None = None


class TaskStarted(CodexEvent):
    TYPE = "task_started"


class TaskComplete(CodexEvent):
    TYPE = "task_complete"
    last_agent_message: str | None = None
    duration_ms: int | None = None


class TurnAborted(CodexEvent):
    TYPE = "turn_aborted"
    reason: str | None = None


class ErrorEvent(CodexEvent):
    TYPE = "error"
    message: str = ""


class WarningEvent(CodexEvent):
    TYPE = "warning"
    message: str = ""


class AgentMessage(CodexEvent):
    TYPE = "agent_message"
    message: str = ""


class TokenCount(CodexEvent):
    """Token usage: ``total`` is cumulative over the thread, ``last`` is the last request."""

    TYPE = "token_count"
    total: TokenUsage | None = None
    last: TokenUsage | None = None


class ExecCommandBegin(CodexEvent):
    TYPE = "exec_command_begin"
    call_id: str = ""
    command: list[str] = Field(default_factory=list)
    cwd: str | None = None

    @property
    def text(self) -> str:
        return command_text(self.command)


class ExecCommandEnd(CodexEvent):
    """A command finished: ``exit_code`` is the real exit code of the process."""

    TYPE = "exec_command_end"
    call_id: str = ""
    command: list[str] = Field(default_factory=list)
    cwd: str | None = None
    exit_code: int | None = None
    status: str | None = None
    duration_ms: int | None = None
    output: str = Field(default="", description="Aggregated stdout+stderr (its last 64k chars).")

    @property
    def text(self) -> str:
        return command_text(self.command)


class PatchApplyBegin(CodexEvent):
    TYPE = "patch_apply_begin"
    call_id: str = ""
    auto_approved: bool | None = None
    files: list[str] = Field(default_factory=list)


class PatchApplyEnd(CodexEvent):
    TYPE = "patch_apply_end"
    call_id: str = ""
    success: bool = False
    status: str | None = None
    files: list[str] = Field(default_factory=list)


class TurnDiff(CodexEvent):
    TYPE = "turn_diff"
    unified_diff: str = ""


class ApprovalRequested(CodexEvent):
    """codex asks to run a command (``exec_approval_request``) or apply a patch."""

    TYPE = "approval_requested"
    kind: str = "exec"
    call_id: str = ""
    command: list[str] = Field(default_factory=list)
    cwd: str | None = None
    reason: str | None = None


class ToolCall(CodexEvent):
    """The model asked for a command (its tool call, as codex sent it to the model)."""

    TYPE = TOOL_CALL
    call_id: str = ""
    tool: str = ""
    command: str = Field(default="", description="The command as the model wrote it.")
    cwd: str | None = None


class ToolOutput(CodexEvent):
    """What codex answered a tool call with: the exit code it names and the output."""

    TYPE = TOOL_OUTPUT
    call_id: str = ""
    exit_code: int | None = None
    output: str = Field(default="", description="The command's output (its last 64k chars).")


class OtherEvent(CodexEvent):
    """Any event type we do not model; only its type is kept."""


class EventCallback(Protocol):
    """Receives every event of a call, in the order the server sent them."""

    async def __call__(self, event: CodexEvent) -> None: ...


def parse_event(params: Mapping[str, Any]) -> CodexEvent | None:
    """The typed event of one ``codex/event`` params object; None for noise."""
    msg = params.get("msg")
    if not isinstance(msg, Mapping):
        return None
    kind = str(msg.get("type", ""))
    if kind in NOISE_TYPES:
        return None
    meta = _mapping(params.get("_meta"))
    base: dict[str, Any] = {
        "type": kind,
        "request_id": meta.get("requestId"),
        "thread_id": meta.get("threadId") or msg.get("thread_id"),
        "turn_id": msg.get("turn_id") or params.get("id") or None,
    }
    builder = _BUILDERS.get(kind)
    if builder is None:
        return OtherEvent.model_validate(base)
    return builder(base, msg)


_Builder = Callable[[dict[str, Any], Mapping[str, Any]], CodexEvent | None]


def _simple(cls: type[CodexEvent]) -> _Builder:
    def build(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent:
        return cls.model_validate({**msg, **base})

    return build


def _tokens(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent:
    info = _mapping(msg.get("info"))
    return TokenCount.model_validate(
        {
            **base,
            "total": _usage(info.get("total_token_usage")),
            "last": _usage(info.get("last_token_usage")),
        }
    )


def _usage(data: Any) -> TokenUsage | None:
    if not isinstance(data, Mapping):
        return None
    fields = TokenUsage.model_fields
    return TokenUsage(**{k: int(v or 0) for k, v in data.items() if k in fields})


def _exec_begin(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent:
    return ExecCommandBegin.model_validate({**base, **_exec_common(msg)})


def _exec_end(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent:
    output = str(msg.get("aggregated_output") or "")
    return ExecCommandEnd.model_validate(
        {
            **base,
            **_exec_common(msg),
            "exit_code": msg.get("exit_code"),
            "status": msg.get("status"),
            "duration_ms": _duration_ms(msg.get("duration")),
            "output": output[-MAX_OUTPUT_CHARS:],
        }
    )


def _exec_common(msg: Mapping[str, Any]) -> dict[str, Any]:
    command = msg.get("command")
    return {
        "call_id": str(msg.get("call_id", "")),
        "command": [str(part) for part in command] if isinstance(command, list) else [],
        "cwd": _path(msg.get("cwd")),
    }


def _patch_begin(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent:
    return PatchApplyBegin.model_validate(
        {
            **base,
            "call_id": str(msg.get("call_id", "")),
            "auto_approved": msg.get("auto_approved"),
            "files": _changed_files(msg.get("changes")),
        }
    )


def _patch_end(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent:
    return PatchApplyEnd.model_validate(
        {
            **base,
            "call_id": str(msg.get("call_id", "")),
            "success": bool(msg.get("success")),
            "status": msg.get("status"),
            "files": _changed_files(msg.get("changes")),
        }
    )


def _approval(kind: str) -> _Builder:
    def build(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent:
        command = msg.get("command")
        return ApprovalRequested.model_validate(
            {
                **base,
                "type": ApprovalRequested.TYPE,
                "kind": kind,
                "call_id": str(msg.get("call_id", "")),
                "command": [str(p) for p in command] if isinstance(command, list) else [],
                "cwd": _path(msg.get("cwd")),
                "reason": msg.get("reason"),
            }
        )

    return build


def tool_item_event(item: Any, base: dict[str, Any]) -> CodexEvent | None:
    """The :class:`ToolCall` / :class:`ToolOutput` of one response item codex sent the
    model (both backends forward them); None for every other item."""
    fields = tool_fields(item) if isinstance(item, Mapping) else None
    if fields is None:
        return None
    model = ToolCall if fields["type"] == TOOL_CALL else ToolOutput
    if model is ToolOutput:
        fields["output"] = fields["output"][-MAX_OUTPUT_CHARS:]
    return model.model_validate({**base, **fields})


def _raw_item(base: dict[str, Any], msg: Mapping[str, Any]) -> CodexEvent | None:
    return tool_item_event(msg.get("item"), base)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _changed_files(changes: Any) -> list[str]:
    return sorted(str(path) for path in changes) if isinstance(changes, Mapping) else []


def _path(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.removeprefix("file://")


def _duration_ms(value: Any) -> int | None:
    if isinstance(value, Mapping):
        return int(value.get("secs", 0)) * 1000 + int(value.get("nanos", 0)) // 1_000_000
    if isinstance(value, int | float):
        return int(value)
    return None


_BUILDERS: dict[str, _Builder] = {
    SessionConfigured.TYPE: _simple(SessionConfigured),
    TaskStarted.TYPE: _simple(TaskStarted),
    TaskComplete.TYPE: _simple(TaskComplete),
    TurnAborted.TYPE: _simple(TurnAborted),
    ErrorEvent.TYPE: _simple(ErrorEvent),
    WarningEvent.TYPE: _simple(WarningEvent),
    AgentMessage.TYPE: _simple(AgentMessage),
    TurnDiff.TYPE: _simple(TurnDiff),
    TokenCount.TYPE: _tokens,
    ExecCommandBegin.TYPE: _exec_begin,
    ExecCommandEnd.TYPE: _exec_end,
    PatchApplyBegin.TYPE: _patch_begin,
    PatchApplyEnd.TYPE: _patch_end,
    "exec_approval_request": _approval("exec"),
    "apply_patch_approval_request": _approval("patch"),
    "raw_response_item": _raw_item,
}
