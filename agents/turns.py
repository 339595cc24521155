"""What one agent turn did, built from its events: the same :class:`Turn` from any backend.

A backend collects a :class:`TurnRecord` per call (the typed events in order, the
approvals, what the server said the thread and the final message are); a
:class:`TurnBuilder` of the session turns it into a :class:`Turn`: commands with their
real exit codes (denied ones too), patches relative to the thread's folder, the tokens
of this turn alone (codex counts per thread), the duration.

A command the sandbox refused (a write outside the writable roots) is recorded with
status :data:`SANDBOX_REFUSED` and the refusal as its reason: a failed command, not
escalated, whose output names a read-only file system or a forbidden operation (how
codex itself tells a sandbox denial). codex does not always report such a command with
exec events, or reports it with an empty output; the model's tool call and codex's
answer to it (:class:`ToolCall`, :class:`ToolOutput`, see :mod:`agents._tool_calls`)
then say what ran and how it ended, so every command the model asked for is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from schemas import CommandRecord, PatchRecord, TokenUsage

from .approvals import ApprovalRecord
from .events import (
    AgentMessage,
    CodexEvent,
    ExecCommandBegin,
    ExecCommandEnd,
    PatchApplyEnd,
    TokenCount,
    ToolCall,
    ToolOutput,
    TurnDiff,
)

__all__ = [
    "SANDBOX_REFUSED",
    "Turn",
    "TurnBuilder",
    "TurnRecord",
    "finished_commands",
    "summarize_commands",
    "summarize_patches",
    "with_tool_calls",
]

SANDBOX_REFUSED = "refused-by-sandbox"
"""The status of a command the sandbox refused."""
_SANDBOX_DENIALS = ("read-only file system", "operation not permitted")
_REASON_CHARS = 300


@dataclass(frozen=True, kw_only=True)
class Turn:
    """The outcome of one agent call (``codex`` or ``codex-reply`` on the MCP backend)."""

    thread_id: str
    text: str
    commands: list[CommandRecord]
    patches: list[PatchRecord]
    tokens: TokenUsage
    duration_ms: int
    events: list[CodexEvent]
    approvals: list[ApprovalRecord] = field(default_factory=list)
    request_id: int | str | None = None

    @property
    def exec_results(self) -> list[ExecCommandEnd]:
        """Every finished command of the turn, with its exit code and output, in order
        (:func:`finished_commands`)."""
        return finished_commands(self.events)

    @property
    def diff(self) -> str | None:
        """The turn's last unified diff as codex reported it, if any."""
        diffs = [e.unified_diff for e in self.events if isinstance(e, TurnDiff)]
        return diffs[-1] if diffs else None


@dataclass(frozen=True, kw_only=True)
class TurnRecord:
    """What a backend collected for one call that finished.

    Attributes:
        thread_id: the thread as the server named it in its result (None: from events).
        text: the final message as the server returned it (None: the last agent message).
        events: every event of the call, in the order the server sent them.
        approvals: the approval requests of the call and their answers.
        cwd: the folder the thread works in, when the call said.
        duration_ms: how long the call took.
        request_id: the backend's id of the call, for logs.
    """

    thread_id: str | None
    text: str | None
    events: list[CodexEvent]
    approvals: list[ApprovalRecord]
    cwd: str | None
    duration_ms: int
    request_id: int | str | None = None


class TurnBuilder:
    """Builds the turns of one session; remembers per thread what its next turn needs."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenUsage] = {}
        self._cwd: dict[str, str] = {}

    def cwd_of(self, thread_id: str) -> str | None:
        """The folder thread ``thread_id`` works in, if a turn of this session said."""
        return self._cwd.get(thread_id)

    def build(self, record: TurnRecord) -> Turn:
        """The :class:`Turn` of ``record``."""
        events = record.events
        thread_id = record.thread_id or _thread_of(events) or ""
        if record.cwd is not None:
            self._cwd[thread_id] = record.cwd
        cwd = self._cwd.get(thread_id)
        return Turn(
            thread_id=thread_id,
            text=record.text if record.text is not None else _last_message(events),
            commands=summarize_commands(events, record.approvals),
            patches=summarize_patches(events, cwd=cwd),
            tokens=self._tokens_of(thread_id, events),
            duration_ms=record.duration_ms,
            events=list(events),
            approvals=list(record.approvals),
            request_id=record.request_id,
        )

    def _tokens_of(self, thread_id: str, events: list[CodexEvent]) -> TokenUsage:
        totals = [e.total for e in events if isinstance(e, TokenCount) and e.total is not None]
        if not totals:
            return TokenUsage()
        baseline = self._tokens.get(thread_id, TokenUsage())
        self._tokens[thread_id] = totals[-1]
        return _minus(totals[-1], baseline)


def summarize_commands(
    events: list[CodexEvent], approvals: list[ApprovalRecord] | None = None
) -> list[CommandRecord]:
    """One record per command, in the order the model asked for them: exit code and
    status from its end event (:func:`with_tool_calls` fills in what exec events lack);
    denied ones and ones the sandbox refused too.

    A denied command is recorded once, from its approval (with the person's reason),
    also where the backend announced it as an item before asking (app-server).
    """
    events = with_tool_calls(events)
    escalated = {
        r.request.call_id for r in approvals or [] if r.request.kind == "exec" and r.answer.approved
    }
    denied = [record for record in approvals or [] if _is_denied_exec(record)]
    declined = {record.request.call_id for record in denied if record.request.call_id}
    ended = {e.call_id: e for e in events if isinstance(e, ExecCommandEnd)}
    records: list[CommandRecord] = []
    for event in events:
        if isinstance(event, ExecCommandBegin):
            end = ended.pop(event.call_id, None)
            if event.call_id not in declined:
                records.append(
                    _command_record(event, end, sandboxed=event.call_id not in escalated)
                )
    records += [
        _command_record(end, end, sandboxed=end.call_id not in escalated)
        for end in ended.values()
        if end.call_id not in declined
    ]
    records += [_denied(record) for record in denied]
    return records


def finished_commands(events: list[CodexEvent]) -> list[ExecCommandEnd]:
    """Every finished command, in order, with its exit code and output
    (:func:`with_tool_calls`)."""
    return [e for e in with_tool_calls(events) if isinstance(e, ExecCommandEnd)]


def with_tool_calls(events: list[CodexEvent]) -> list[CodexEvent]:
    """The events with what codex's exec events lack taken from the model's tool calls
    and codex's answers: an end event's empty output from the answer; for a command
    with no exec events, a begin event at its tool call and, when the answer names an
    exit code, an end event at the answer."""
    answers = {e.call_id: e for e in events if isinstance(e, ToolOutput)}
    calls = {e.call_id: e for e in events if isinstance(e, ToolCall)}
    reported = {e.call_id for e in events if isinstance(e, ExecCommandBegin | ExecCommandEnd)}
    completed: list[CodexEvent] = []
    for event in events:
        answer = answers.get(getattr(event, "call_id", ""))
        if isinstance(event, ExecCommandEnd) and not event.output and answer and answer.output:
            event = event.model_copy(update={"output": answer.output})
        elif isinstance(event, ToolCall) and event.call_id not in reported:
            event = _begin_of(event)
        elif isinstance(event, ToolOutput) and event.call_id in calls:
            if event.call_id in reported or event.exit_code is None:
                continue
            event = _end_of(calls[event.call_id], event)
        completed.append(event)
    return completed


def _begin_of(call: ToolCall) -> ExecCommandBegin:
    return ExecCommandBegin(
        type=ExecCommandBegin.TYPE,
        request_id=call.request_id,
        thread_id=call.thread_id,
        turn_id=call.turn_id,
        call_id=call.call_id,
        command=["bash", "-lc", call.command],
        cwd=call.cwd,
    )


def _end_of(call: ToolCall, answer: ToolOutput) -> ExecCommandEnd:
    return ExecCommandEnd(
        type=ExecCommandEnd.TYPE,
        request_id=answer.request_id,
        thread_id=answer.thread_id,
        turn_id=answer.turn_id,
        call_id=call.call_id,
        command=["bash", "-lc", call.command],
        cwd=call.cwd,
        exit_code=answer.exit_code,
        status="failed" if answer.exit_code else "completed",
        output=answer.output,
    )


def summarize_patches(events: list[CodexEvent], *, cwd: str | None = None) -> list[PatchRecord]:
    """One record per applied (or failed) patch; paths relative to ``cwd`` when inside."""
    ends = [e for e in events if isinstance(e, PatchApplyEnd)]
    return [
        PatchRecord(files=[_relative(f, cwd) for f in e.files], success=e.success) for e in ends
    ]


def _command_record(
    begin: ExecCommandBegin | ExecCommandEnd, end: ExecCommandEnd | None, *, sandboxed: bool
) -> CommandRecord:
    exit_code = end.exit_code if end else None
    refusal = _sandbox_refusal(exit_code, end.output) if sandboxed and end else None
    status = (end.status or "completed") if end else "incomplete"
    return CommandRecord(
        command=begin.text,
        cwd=begin.cwd,
        exit_code=exit_code,
        status=SANDBOX_REFUSED if refusal else status,
        duration_ms=end.duration_ms if end else None,
        reason=refusal,
    )


def _sandbox_refusal(exit_code: int | None, output: str) -> str | None:
    """``refused by the sandbox: <the output's line>`` for a failed sandboxed command whose
    output names a sandbox denial; None otherwise."""
    if not exit_code:
        return None
    for line in output.splitlines():
        if any(denial in line.lower() for denial in _SANDBOX_DENIALS):
            return f"refused by the sandbox: {line.strip()[:_REASON_CHARS]}"
    return None


def _is_denied_exec(record: ApprovalRecord) -> bool:
    return record.request.kind == "exec" and not record.answer.approved


def _denied(record: ApprovalRecord) -> CommandRecord:
    request = record.request
    return CommandRecord(
        command=request.command_text,
        cwd=str(request.cwd) if request.cwd else None,
        status="denied",
        reason=record.answer.reason or None,
    )


def _relative(path: str, cwd: str | None) -> str:
    if cwd is None:
        return path
    try:
        return Path(path).relative_to(cwd).as_posix()
    except ValueError:
        return path


def _last_message(events: list[CodexEvent]) -> str:
    messages = [e.message for e in events if isinstance(e, AgentMessage)]
    return messages[-1] if messages else ""


def _thread_of(events: list[CodexEvent]) -> str | None:
    return next((e.thread_id for e in events if e.thread_id), None)


def _minus(total: TokenUsage, baseline: TokenUsage) -> TokenUsage:
    return TokenUsage(
        **{
            name: max(0, getattr(total, name) - getattr(baseline, name))
            for name in TokenUsage.model_fields
        }
    )
