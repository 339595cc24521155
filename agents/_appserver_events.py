"""``codex app-server`` notifications and approval requests as this package's own types.

The app-server reports a turn as items (``item/started`` / ``item/completed`` of a
``commandExecution``, a ``fileChange``, an ``agentMessage``...) plus turn and token
notifications; the roles, the turn builder and every event subscriber know the
:class:`~agents.events.CodexEvent` types of the MCP backend. The translation is here,
one notification at a time, with the SDK's generated models (``openai_codex.generated
.v2_all``) validating what codex sent:

========================================  ==========================================
app-server                                event
========================================  ==========================================
``turn/started``                          :class:`TaskStarted`
``item/started`` commandExecution         :class:`ExecCommandBegin`
``item/completed`` commandExecution       :class:`ExecCommandEnd` (exit code, output)
``item/started`` / ``completed`` fileChange  :class:`PatchApplyBegin` / :class:`PatchApplyEnd`
``item/completed`` agentMessage           :class:`AgentMessage`
``turn/diff/updated``                     :class:`TurnDiff`
``thread/tokenUsage/updated``             :class:`TokenCount` (cumulative per thread)
``error`` / ``warning``                   :class:`ErrorEvent` / :class:`WarningEvent`
``turn/completed``                        :class:`TaskComplete`
``rawResponseItem/completed``             :class:`ToolCall` / :class:`ToolOutput`
========================================  ==========================================

The raw response items are the one complete record of the commands the model ran:
codex 0.163 sends no ``commandExecution`` item for most commands its sandbox refused
(see :mod:`agents._tool_calls`), so the client opts into the experimental API for them.

The approval requests carry no model in the SDK; :func:`approval_request` reads the
few fields we use (a file change's paths come from its ``fileChange`` item).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Mapping
from typing import Any, Final

from openai_codex.generated import v2_all as wire
from pydantic import BaseModel, ValidationError

from schemas import TokenUsage

from .approvals import ApprovalRequest
from .events import (
    MAX_OUTPUT_CHARS,
    AgentMessage,
    CodexEvent,
    ErrorEvent,
    ExecCommandBegin,
    ExecCommandEnd,
    PatchApplyBegin,
    PatchApplyEnd,
    TaskComplete,
    TaskStarted,
    TokenCount,
    TurnDiff,
    WarningEvent,
    tool_item_event,
)

logger = logging.getLogger(__name__)

COMMAND_APPROVAL: Final = "item/commandExecution/requestApproval"
FILE_CHANGE_APPROVAL: Final = "item/fileChange/requestApproval"
RAW_ITEM: Final = "rawResponseItem/completed"
"""A response item codex sent the model (experimental API: asked for at thread start)."""
QUIET_METHODS: Final = (
    "item/agentMessage/delta",
    "item/commandExecution/outputDelta",
    "item/fileChange/outputDelta",
    "item/reasoning/summaryTextDelta",
    "item/reasoning/summaryPartAdded",
    "item/reasoning/textDelta",
    "item/plan/delta",
    "account/rateLimits/updated",
    "remoteControl/status/changed",
)
"""Streaming fragments and account news: the server is asked not to send them."""

Changes = dict[str, dict[str, Any]]
"""A file change's changes per absolute path, shaped as the MCP backend's approvals."""


def split_command(command: str) -> list[str]:
    """The argv of codex's one-string command (``/bin/bash -c '...'``)."""
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes: keep the text as the script
        return ["sh", "-c", command]


def file_changes(item: wire.FileChangeThreadItem) -> Changes:
    """The item's changes per path, nested by kind as codex's MCP approvals nest them."""
    changes: Changes = {}
    for change in item.changes:
        kind = change.kind.root
        detail: dict[str, Any] = {"unified_diff": change.diff}
        if isinstance(kind, wire.UpdatePatchChangeKind) and kind.move_path:
            detail["move_path"] = kind.move_path
        changes[change.path] = {kind.type: detail}
    return changes


class EventReader:
    """Turns one connection's notifications into events; remembers its file changes
    (a file-change approval names only its item)."""

    def __init__(self) -> None:
        self._changes: dict[str, Changes] = {}

    def changes_of(self, item_id: str) -> Changes:
        """The changes of file-change item ``item_id`` (announced before its approval)."""
        return self._changes.get(item_id, {})

    def event(
        self, method: str, params: Mapping[str, Any], *, request_id: int | str | None
    ) -> CodexEvent | None:
        """The event of one notification; None for one we do not report."""
        if method == RAW_ITEM:  # most are messages: read the item's type before validating
            ids = {"thread_id": params.get("threadId"), "turn_id": params.get("turnId")}
            return tool_item_event(params.get("item"), {"request_id": request_id, **ids})
        reader = _READERS.get(method)
        if reader is None:
            return None
        model, build = reader
        try:
            payload = model.model_validate(params)
        except ValidationError as exc:
            logger.warning("codex sent a %s the protocol models refuse: %s", method, exc)
            return None
        base: dict[str, Any] = {
            "request_id": request_id,
            "thread_id": getattr(payload, "thread_id", None),
            "turn_id": getattr(payload, "turn_id", None),
        }
        return build(self, payload, base)

    def _item(self, payload: BaseModel, base: dict[str, Any], *, done: bool) -> CodexEvent | None:
        assert isinstance(payload, wire.ItemStartedNotification | wire.ItemCompletedNotification)
        item = payload.item.root
        if isinstance(item, wire.CommandExecutionThreadItem):
            return _command(item, base, done=done)
        if isinstance(item, wire.FileChangeThreadItem):
            changes = self._changes[item.id] = file_changes(item)
            files = sorted(changes)
            if not done:
                return PatchApplyBegin(
                    type=PatchApplyBegin.TYPE, call_id=item.id, files=files, **base
                )
            status = item.status.value
            return PatchApplyEnd(
                type=PatchApplyEnd.TYPE,
                call_id=item.id,
                success=status == "completed",
                status=status,
                files=files,
                **base,
            )
        if isinstance(item, wire.AgentMessageThreadItem) and done:
            return AgentMessage(type=AgentMessage.TYPE, message=item.text, **base)
        return None


def _command(
    item: wire.CommandExecutionThreadItem, base: dict[str, Any], *, done: bool
) -> CodexEvent:
    common: dict[str, Any] = {
        "call_id": item.id,
        "command": split_command(item.command),
        "cwd": item.cwd.root,
        **base,
    }
    if not done:
        return ExecCommandBegin(type=ExecCommandBegin.TYPE, **common)
    return ExecCommandEnd(
        type=ExecCommandEnd.TYPE,
        exit_code=item.exit_code,
        status=item.status.value,
        duration_ms=item.duration_ms,
        output=(item.aggregated_output or "")[-MAX_OUTPUT_CHARS:],
        **common,
    )


def _usage(breakdown: wire.TokenUsageBreakdown) -> TokenUsage:
    return TokenUsage(
        input_tokens=breakdown.input_tokens,
        cached_input_tokens=breakdown.cached_input_tokens,
        output_tokens=breakdown.output_tokens,
        reasoning_output_tokens=breakdown.reasoning_output_tokens,
        total_tokens=breakdown.total_tokens,
    )


def _tokens(_: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent:
    assert isinstance(payload, wire.ThreadTokenUsageUpdatedNotification)
    usage = payload.token_usage
    return TokenCount(
        type=TokenCount.TYPE, total=_usage(usage.total), last=_usage(usage.last), **base
    )


def _turn_started(_: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent:
    assert isinstance(payload, wire.TurnStartedNotification)
    return TaskStarted(type=TaskStarted.TYPE, **{**base, "turn_id": payload.turn.id})


def _turn_completed(_: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent:
    assert isinstance(payload, wire.TurnCompletedNotification)
    turn = payload.turn
    return TaskComplete(
        type=TaskComplete.TYPE, duration_ms=turn.duration_ms, **{**base, "turn_id": turn.id}
    )


def _diff(_: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent:
    assert isinstance(payload, wire.TurnDiffUpdatedNotification)
    return TurnDiff(type=TurnDiff.TYPE, unified_diff=payload.diff, **base)


def _error(_: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent:
    assert isinstance(payload, wire.ErrorNotification)
    return ErrorEvent(type=ErrorEvent.TYPE, message=payload.error.message, **base)


def _warning(_: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent:
    assert isinstance(payload, wire.WarningNotification)
    return WarningEvent(type=WarningEvent.TYPE, message=payload.message, **base)


def _started(reader: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent | None:
    return reader._item(payload, base, done=False)


def _completed(reader: EventReader, payload: BaseModel, base: dict[str, Any]) -> CodexEvent | None:
    return reader._item(payload, base, done=True)


_Build = Callable[[EventReader, BaseModel, dict[str, Any]], CodexEvent | None]
_READERS: dict[str, tuple[type[BaseModel], _Build]] = {
    "turn/started": (wire.TurnStartedNotification, _turn_started),
    "item/started": (wire.ItemStartedNotification, _started),
    "item/completed": (wire.ItemCompletedNotification, _completed),
    "turn/diff/updated": (wire.TurnDiffUpdatedNotification, _diff),
    "thread/tokenUsage/updated": (wire.ThreadTokenUsageUpdatedNotification, _tokens),
    "error": (wire.ErrorNotification, _error),
    "warning": (wire.WarningNotification, _warning),
    "turn/completed": (wire.TurnCompletedNotification, _turn_completed),
}


def approval_request(
    method: str,
    params: Mapping[str, Any],
    *,
    changes: Callable[[str], Changes],
    request_id: int | str | None,
) -> ApprovalRequest:
    """The :class:`ApprovalRequest` of an app-server approval request.

    Raises:
        LookupError: ``method`` is no approval request we answer.
    """
    item_id = _text(params.get("itemId"))
    reason = _text(params.get("reason"))
    cwd = _text(params.get("cwd"))
    common: dict[str, Any] = {
        "thread_id": _text(params.get("threadId")),
        "call_id": item_id,
        "request_id": request_id,
        "reason": reason,
        "cwd": cwd,
    }
    if method == COMMAND_APPROVAL:
        command = split_command(_text(params.get("command")) or "")
        request = ApprovalRequest(kind="exec", command=command, **common)
        message = f"codex asks to run: {request.command_text}"
    elif method == FILE_CHANGE_APPROVAL:
        request = ApprovalRequest(kind="patch", changes=changes(item_id or ""), **common)
        message = f"codex asks to change: {', '.join(request.files) or '(no files)'}"
    else:
        raise LookupError(method)
    if reason:
        message += f" ({reason})"
    return request.model_copy(update={"message": message})


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None
