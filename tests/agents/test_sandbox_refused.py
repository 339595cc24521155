"""A command the sandbox refused is recorded with an outcome that says so: from its exec
events, or from the model's tool call and codex's answer where codex sent none."""

from __future__ import annotations

import json

from agents._appserver_events import RAW_ITEM, EventReader
from agents.approvals import ApprovalAnswer, ApprovalRecord, ApprovalRequest
from agents.events import (
    CodexEvent,
    ExecCommandBegin,
    ExecCommandEnd,
    ToolCall,
    ToolOutput,
    parse_event,
)
from agents.turns import SANDBOX_REFUSED, finished_commands, summarize_commands


def _exec(call_id: str, command: str, *, exit_code: int, output: str) -> list[object]:
    argv = ["/bin/bash", "-c", command]
    return [
        ExecCommandBegin(type="exec_command_begin", call_id=call_id, command=argv),
        ExecCommandEnd(
            type="exec_command_end",
            call_id=call_id,
            command=argv,
            exit_code=exit_code,
            status="failed" if exit_code else "completed",
            output=output,
        ),
    ]


def test_a_failed_write_to_a_read_only_file_system_is_refused_by_the_sandbox() -> None:
    events = _exec(
        "c1",
        "touch /usr/x",
        exit_code=1,
        output="touch: cannot touch '/usr/x': Read-only file system",
    )
    [record] = summarize_commands(events)  # type: ignore[arg-type]
    assert (record.command, record.exit_code, record.status) == ("touch /usr/x", 1, SANDBOX_REFUSED)
    assert (
        record.reason
        == "refused by the sandbox: touch: cannot touch '/usr/x': Read-only file system"
    )


def test_an_ordinary_failure_and_an_escalated_command_are_not_sandbox_refusals() -> None:
    events = [
        *_exec("c1", "pytest -q", exit_code=1, output="1 failed in 0.1s"),
        *_exec("c2", "touch /usr/x", exit_code=1, output="touch: /usr/x: Read-only file system"),
        *_exec("c3", "echo read-only file system", exit_code=0, output="read-only file system"),
    ]
    approved = ApprovalRecord(
        request=ApprovalRequest(kind="exec", command=["touch", "/usr/x"], call_id="c2"),
        answer=ApprovalAnswer(approved=True),
    )
    records = summarize_commands(events, [approved])  # type: ignore[arg-type]
    assert [(r.status, r.reason) for r in records] == [
        ("failed", None),
        ("failed", None),  # it ran outside the sandbox: whatever refused it, not the sandbox
        ("completed", None),
    ]


WRITE_HOME = "python3 -c \"import pathlib; (pathlib.Path.home() / 'x').write_text('x')\""
REFUSAL = "OSError: [Errno 30] Read-only file system: '/root/x'"


def raw(item: dict[str, object]) -> CodexEvent:
    """A ``raw_response_item`` event as codex mcp-server sends it."""
    event = parse_event(
        {"_meta": {"requestId": 2}, "id": "2", "msg": {"type": "raw_response_item", "item": item}}
    )
    assert event is not None
    return event


def tool_call(call_id: str, command: str) -> dict[str, object]:
    arguments = json.dumps({"cmd": command, "login": False})
    return {
        "type": "function_call",
        "name": "exec_command",
        "arguments": arguments,
        "call_id": call_id,
    }


def tool_output(call_id: str, exit_code: int, output: str) -> dict[str, object]:
    header = f"Chunk ID: 1\nWall time: 0.0 seconds\nProcess exited with code {exit_code}"
    text = f"{header}\nOutput:\n{output}"
    return {"type": "function_call_output", "call_id": call_id, "output": text}


def test_a_refused_command_without_exec_events_is_recorded_from_its_tool_call() -> None:
    events = [
        raw(tool_call("c1", WRITE_HOME)),
        raw(tool_output("c1", 1, f"Traceback\n{REFUSAL}\n")),
    ]
    [record] = summarize_commands(events)
    assert (record.command, record.exit_code, record.status) == (WRITE_HOME, 1, SANDBOX_REFUSED)
    assert record.reason == f"refused by the sandbox: {REFUSAL}"


def test_an_exec_end_without_output_is_judged_by_codexs_answer_and_recorded_once() -> None:
    events = [
        raw(tool_call("c1", "touch /usr/x")),
        *_exec("c1", "touch /usr/x", exit_code=1, output=""),
        raw(tool_output("c1", 1, "touch: cannot touch '/usr/x': Read-only file system")),
        raw(tool_call("c2", "pytest -q")),
        raw(tool_output("c2", 0, "1 passed")),
    ]
    records = summarize_commands(events)  # type: ignore[arg-type]
    assert [(r.command, r.status, r.exit_code) for r in records] == [
        ("touch /usr/x", SANDBOX_REFUSED, 1),
        ("pytest -q", "completed", 0),  # no exec events: from the tool call, not lost
    ]


def test_a_denied_tool_call_is_recorded_once_from_its_approval() -> None:
    denied = ApprovalRecord(
        request=ApprovalRequest(kind="exec", command=["touch", "/usr/x"], call_id="c1"),
        answer=ApprovalAnswer(approved=False, reason="no"),
    )
    records = summarize_commands([raw(tool_call("c1", "touch /usr/x"))], [denied])
    assert [(r.status, r.reason) for r in records] == [("denied", "no")]


def test_tool_outputs_of_every_command_tool_name_their_exit_code() -> None:
    shell = json.dumps({"output": "boom", "metadata": {"exit_code": 2, "duration_seconds": 0.1}})
    answers = [
        raw({"type": "function_call_output", "call_id": "a", "output": shell}),
        raw(
            {"type": "function_call_output", "call_id": "b", "output": "Exit code: 3\nOutput:\nno"}
        ),
        raw(
            {
                "type": "function_call_output",
                "call_id": "c",
                "output": "Process running with session ID 7\n",
            }
        ),
    ]
    assert [(e.exit_code, e.output) for e in answers if isinstance(e, ToolOutput)] == [
        (2, "boom"),
        (3, "no"),
        (None, "Process running with session ID 7\n"),
    ]


def test_only_command_items_become_events_on_both_backends() -> None:
    message = {"type": "message", "role": "developer", "content": []}
    write_stdin = {
        "type": "function_call",
        "name": "write_stdin",
        "arguments": "{}",
        "call_id": "w",
    }
    for item in (message, write_stdin):
        assert parse_event({"msg": {"type": "raw_response_item", "item": item}}) is None
    reader = EventReader()
    params = {"threadId": "t1", "turnId": "7", "item": tool_call("c1", "ls")}
    event = reader.event(RAW_ITEM, params, request_id=3)
    assert isinstance(event, ToolCall)
    assert (event.call_id, event.command, event.thread_id, event.turn_id) == ("c1", "ls", "t1", "7")
    assert reader.event(RAW_ITEM, {**params, "item": message}, request_id=3) is None


def test_finished_commands_are_complete_where_exec_events_are_missing_or_empty() -> None:
    """What the tester reads its test command's outcome from."""
    events = [
        raw(tool_call("c1", "pytest -q")),
        raw(tool_output("c1", 1, "1 failed in 0.1s\n")),
        raw(tool_call("c2", "ls")),
        *_exec("c2", "ls", exit_code=0, output=""),
        raw(tool_output("c2", 0, "README.md\n")),
        raw(tool_call("c3", "sleep 60")),  # still running: no exit code, not finished
        raw({"type": "function_call_output", "call_id": "c3", "output": "Process running"}),
    ]
    results = finished_commands(events)  # type: ignore[arg-type]
    assert [(r.text, r.exit_code, r.output) for r in results] == [
        ("pytest -q", 1, "1 failed in 0.1s\n"),
        ("ls", 0, "README.md\n"),
    ]
