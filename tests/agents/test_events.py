"""Typed codex events parsed from ``codex/event`` params (shapes seen from codex 0.147)."""

from __future__ import annotations

from typing import Any

from agents import (
    ApprovalRequested,
    ExecCommandBegin,
    ExecCommandEnd,
    OtherEvent,
    PatchApplyEnd,
    TaskComplete,
    TokenCount,
    parse_event,
)
from agents.turns import summarize_commands, summarize_patches
from schemas import TokenUsage


def params(msg: dict[str, Any], *, request_id: int = 3) -> dict[str, Any]:
    return {"_meta": {"requestId": request_id, "threadId": "t-1"}, "id": "3", "msg": msg}


def test_exec_events_carry_the_command_cwd_exit_code_and_output() -> None:
    command = ["/bin/bash", "-lc", "python -m pytest -q"]
    begin = parse_event(
        params(
            {"type": "exec_command_begin", "call_id": "c", "command": command, "cwd": "file:///r"}
        )
    )
    end = parse_event(
        params(
            {
                "type": "exec_command_end",
                "call_id": "c",
                "command": command,
                "cwd": "file:///r",
                "exit_code": 1,
                "status": "failed",
                "duration": {"secs": 1, "nanos": 500_000_000},
                "aggregated_output": "x" * 70_000 + "1 failed in 1s",
            }
        )
    )
    assert isinstance(begin, ExecCommandBegin) and isinstance(end, ExecCommandEnd)
    assert (begin.request_id, begin.thread_id, begin.turn_id) == (3, "t-1", "3")
    assert begin.text == end.text == "python -m pytest -q"
    assert (end.cwd, end.exit_code, end.status, end.duration_ms) == ("/r", 1, "failed", 1500)
    assert end.output.endswith("1 failed in 1s") and len(end.output) == 64_000
    [record] = summarize_commands([begin, end])
    assert (record.command, record.exit_code, record.duration_ms) == (
        "python -m pytest -q",
        1,
        1500,
    )


def test_a_command_without_an_end_is_incomplete() -> None:
    begin = parse_event(params({"type": "exec_command_begin", "call_id": "c", "command": ["ls"]}))
    assert isinstance(begin, ExecCommandBegin)
    [record] = summarize_commands([begin])
    assert (record.command, record.exit_code, record.status) == ("ls", None, "incomplete")


def test_token_counts_keep_total_and_last_usage() -> None:
    usage = {
        "input_tokens": 10,
        "cached_input_tokens": 2,
        "cache_write_input_tokens": 0,
        "output_tokens": 3,
        "reasoning_output_tokens": 1,
        "total_tokens": 13,
    }
    event = parse_event(
        params(
            {"type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage}}
        )
    )
    assert isinstance(event, TokenCount)
    assert event.total == TokenUsage(
        input_tokens=10,
        cached_input_tokens=2,
        output_tokens=3,
        reasoning_output_tokens=1,
        total_tokens=13,
    )
    empty = parse_event(params({"type": "token_count", "info": None}))
    assert isinstance(empty, TokenCount) and empty.total is None


def test_patch_events_list_the_changed_files_relative_to_the_workspace() -> None:
    changes = {"/w/b.py": {"type": "add"}, "/w/a.py": {"type": "update"}, "/else/c": {}}
    event = parse_event(
        params({"type": "patch_apply_end", "call_id": "p", "success": True, "changes": changes})
    )
    assert isinstance(event, PatchApplyEnd)
    assert event.files == ["/else/c", "/w/a.py", "/w/b.py"]
    [record] = summarize_patches([event], cwd="/w")
    assert record.files == ["/else/c", "a.py", "b.py"] and record.success


def test_approval_requests_and_completion_are_typed() -> None:
    request = parse_event(
        params(
            {
                "type": "exec_approval_request",
                "call_id": "e",
                "command": ["touch", "x"],
                "cwd": "/w",
                "reason": "needs it",
            }
        )
    )
    done = parse_event(params({"type": "task_complete", "last_agent_message": "ok"}))
    assert isinstance(request, ApprovalRequested)
    assert (request.kind, request.command, request.reason) == ("exec", ["touch", "x"], "needs it")
    assert isinstance(done, TaskComplete) and done.last_agent_message == "ok"


def test_noise_is_dropped_and_unknown_types_keep_only_their_type() -> None:
    assert parse_event(params({"type": "raw_response_item", "item": {}})) is None
    assert parse_event(params({"type": "exec_command_output_delta", "chunk": "aGk="})) is None
    other = parse_event(params({"type": "mcp_startup_complete", "ready": ["x"]}))
    assert isinstance(other, OtherEvent) and other.type == "mcp_startup_complete"
    assert "ready" not in other.model_dump()
    assert parse_event({"msg": "not a mapping"}) is None
