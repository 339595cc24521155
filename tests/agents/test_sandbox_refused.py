"""A command the sandbox refused is recorded with an outcome that says so (from its events)."""

from __future__ import annotations

from agents.approvals import ApprovalAnswer, ApprovalRecord, ApprovalRequest
from agents.events import ExecCommandBegin, ExecCommandEnd
from agents.turns import SANDBOX_REFUSED, summarize_commands


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
