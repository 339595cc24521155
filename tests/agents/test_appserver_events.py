"""app-server notifications and approval requests read as this package's types (no codex)."""

from __future__ import annotations

from typing import Any

import pytest

from agents import ExecCommandBegin, ExecCommandEnd, PatchApplyEnd, TokenCount
from agents._appserver_events import EventReader, approval_request, split_command

THREAD, TURN = "thread-1", "turn-1"


def command_item(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "commandExecution",
        "id": "call-1",
        "command": "/bin/bash -c 'ls no-such-file'",
        "cwd": "/work/repo",
        "status": status,
        "commandActions": [],
        **fields,
    }


def notification(item: dict[str, Any], *, done: bool) -> dict[str, Any]:
    stamp = {"completedAtMs": 2} if done else {"startedAtMs": 1}
    return {"item": item, "threadId": THREAD, "turnId": TURN, **stamp}


def test_a_command_item_becomes_begin_and_end_with_its_real_exit_code() -> None:
    reader = EventReader()
    begin = reader.event(
        "item/started", notification(command_item("inProgress"), done=False), request_id=7
    )
    end = reader.event(
        "item/completed",
        notification(
            command_item("failed", exitCode=2, aggregatedOutput="ls: no\n", durationMs=5),
            done=True,
        ),
        request_id=7,
    )

    assert isinstance(begin, ExecCommandBegin) and isinstance(end, ExecCommandEnd)
    assert (begin.text, begin.cwd, begin.call_id, begin.request_id) == (
        "ls no-such-file",
        "/work/repo",
        "call-1",
        7,
    )
    assert (end.exit_code, end.status, end.output, end.duration_ms) == (2, "failed", "ls: no\n", 5)
    assert (end.thread_id, end.turn_id) == (THREAD, TURN)


def test_a_file_change_approval_takes_its_paths_from_the_announced_item() -> None:
    reader = EventReader()
    item = {
        "type": "fileChange",
        "id": "patch-1",
        "status": "inProgress",
        "changes": [
            {"path": "/work/repo/a.py", "kind": {"type": "add"}, "diff": "x\n"},
            {
                "path": "/work/repo/b.py",
                "kind": {"type": "update", "move_path": "/elsewhere/b.py"},
                "diff": "@@\n",
            },
        ],
    }
    reader.event("item/started", notification(item, done=False), request_id=3)

    request = approval_request(
        "item/fileChange/requestApproval",
        {"threadId": THREAD, "turnId": TURN, "itemId": "patch-1", "reason": "outside"},
        changes=reader.changes_of,
        request_id=3,
    )

    assert (request.kind, request.files, request.call_id) == (
        "patch",
        ["/work/repo/a.py", "/work/repo/b.py"],
        "patch-1",
    )
    assert request.changes["/work/repo/b.py"] == {
        "update": {"unified_diff": "@@\n", "move_path": "/elsewhere/b.py"}
    }
    assert "a.py" in request.message and "(outside)" in request.message
    done = reader.event(
        "item/completed", notification({**item, "status": "declined"}, done=True), request_id=3
    )
    assert isinstance(done, PatchApplyEnd) and not done.success


def test_a_command_approval_reads_the_script_of_the_shell_command() -> None:
    request = approval_request(
        "item/commandExecution/requestApproval",
        {
            "threadId": THREAD,
            "itemId": "call-9",
            "command": '/bin/bash -c "python3 -c \\"print(\'hi\')\\""',
            "cwd": "/work/repo",
            "reason": "needs the network",
        },
        changes=EventReader().changes_of,
        request_id=None,
    )
    assert (request.kind, request.command_text, str(request.cwd)) == (
        "exec",
        "python3 -c \"print('hi')\"",
        "/work/repo",
    )
    assert request.reason == "needs the network"


def test_an_unknown_server_request_is_refused() -> None:
    with pytest.raises(LookupError):
        approval_request(
            "item/tool/requestUserInput", {}, changes=EventReader().changes_of, request_id=None
        )


def test_token_usage_is_the_threads_total_and_the_last_request() -> None:
    usage = {
        "totalTokens": 10,
        "inputTokens": 8,
        "cachedInputTokens": 1,
        "outputTokens": 2,
        "reasoningOutputTokens": 0,
    }
    event = EventReader().event(
        "thread/tokenUsage/updated",
        {"threadId": THREAD, "turnId": TURN, "tokenUsage": {"total": usage, "last": usage}},
        request_id=1,
    )
    assert isinstance(event, TokenCount) and event.total is not None
    assert (event.total.input_tokens, event.total.cached_input_tokens) == (8, 1)


def test_a_notification_the_models_refuse_is_dropped() -> None:
    assert EventReader().event("item/started", {"item": {"type": 3}}, request_id=1) is None


def test_an_unbalanced_command_is_kept_as_the_script() -> None:
    assert split_command("echo 'unterminated") == ["sh", "-c", "echo 'unterminated"]
