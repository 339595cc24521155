"""The policy approver: allow inside the workspace, deny, or escalate with a deadline."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from agents import ApprovalAnswer, ApprovalRequest, PolicyApprover
from schemas import CommandPolicy

pytestmark = pytest.mark.anyio


def exec_request(command: str, cwd: Path) -> ApprovalRequest:
    return ApprovalRequest(kind="exec", command=["/bin/bash", "-c", command], cwd=cwd)


class Person:
    """An escalation hook that answers (or never does) and remembers what it was asked."""

    def __init__(self, answer: ApprovalAnswer | None = None, *, fail: bool = False) -> None:
        self.answer = answer
        self.fail = fail
        self.asked: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> ApprovalAnswer:
        self.asked.append(request)
        if self.fail:
            raise RuntimeError("the approval UI is down")
        if self.answer is None:
            await anyio.Event().wait()  # a person who never decides
        assert self.answer is not None
        return self.answer


@pytest.mark.parametrize(
    "command",
    ["touch approved.txt", "python -m pytest -q tests/", "cat ./a.txt > sub/b.txt && ls"],
)
async def test_commands_inside_the_workspace_are_approved(tmp_path: Path, command: str) -> None:
    approver = PolicyApprover(CommandPolicy.ALLOW_IN_WORKSPACE, workspace=tmp_path)
    answer = await approver(exec_request(command, tmp_path))
    assert answer == ApprovalAnswer(approved=True, reason="inside the workspace")


@pytest.mark.parametrize(
    ("command", "outside"),
    [
        ("touch ../outside.txt", "../outside.txt"),
        ("rm -rf /", "/"),
        ("cat ~/.ssh/id_rsa", "~/.ssh/id_rsa"),
        ("cp x --target-directory=/etc", "/etc"),
        ("echo 'unbalanced", "an unparsable command"),
    ],
)
async def test_commands_reaching_outside_are_denied_without_a_person(
    tmp_path: Path, command: str, outside: str
) -> None:
    approver = PolicyApprover(CommandPolicy.ALLOW_IN_WORKSPACE, workspace=tmp_path)
    answer = await approver(exec_request(command, tmp_path))
    assert not answer.approved
    assert outside in answer.reason


async def test_a_command_run_from_outside_the_workspace_is_outside(tmp_path: Path) -> None:
    approver = PolicyApprover(CommandPolicy.ALLOW_IN_WORKSPACE, workspace=tmp_path / "ws")
    answer = await approver(exec_request("ls", tmp_path))
    assert not answer.approved


async def test_patches_are_judged_by_their_files(tmp_path: Path) -> None:
    approver = PolicyApprover(CommandPolicy.ALLOW_IN_WORKSPACE, workspace=tmp_path)
    inside = ApprovalRequest(kind="patch", cwd=tmp_path, changes={str(tmp_path / "a.py"): {}})
    outside = ApprovalRequest(kind="patch", cwd=tmp_path, changes={"/etc/passwd": {}})
    assert (await approver(inside)).approved
    assert not (await approver(outside)).approved


async def test_outside_the_workspace_goes_to_the_person_when_there_is_one(tmp_path: Path) -> None:
    person = Person(ApprovalAnswer(approved=True, reason="ok by alice"))
    approver = PolicyApprover(CommandPolicy.ALLOW_IN_WORKSPACE, workspace=tmp_path, escalate=person)
    answer = await approver(exec_request("touch /etc/motd", tmp_path))
    assert answer.reason == "ok by alice"
    assert [r.command_text for r in person.asked] == ["touch /etc/motd"]


async def test_deny_never_asks(tmp_path: Path) -> None:
    person = Person(ApprovalAnswer(approved=True))
    approver = PolicyApprover(CommandPolicy.DENY, workspace=tmp_path, escalate=person)
    answer = await approver(exec_request("ls", tmp_path))
    assert not answer.approved and not person.asked


async def test_escalate_asks_for_everything(tmp_path: Path) -> None:
    person = Person(ApprovalAnswer(approved=False, reason="not today"))
    approver = PolicyApprover(CommandPolicy.ESCALATE, workspace=tmp_path, escalate=person)
    assert await approver(exec_request("ls", tmp_path)) == ApprovalAnswer(
        approved=False, reason="not today"
    )


async def test_an_escalation_past_its_deadline_is_a_denial(tmp_path: Path) -> None:
    approver = PolicyApprover(
        CommandPolicy.ESCALATE, workspace=tmp_path, escalate=Person(), timeout=0.05
    )
    with anyio.fail_after(5):
        answer = await approver(exec_request("ls", tmp_path))
    assert answer == ApprovalAnswer(approved=False, reason="no decision within 0.05s: denied")


async def test_a_failing_or_missing_escalation_is_a_denial(tmp_path: Path) -> None:
    failing = PolicyApprover(CommandPolicy.ESCALATE, workspace=tmp_path, escalate=Person(fail=True))
    missing = PolicyApprover(CommandPolicy.ESCALATE, workspace=tmp_path)
    assert not (await failing(exec_request("ls", tmp_path))).approved
    assert not (await missing(exec_request("ls", tmp_path))).approved


def test_a_request_is_read_from_codex_elicitation_params() -> None:
    raw = {
        "message": "Allow Codex to apply proposed code changes?",
        "threadId": "t-1",
        "codex_elicitation": "patch-approval",
        "codex_mcp_tool_call_id": "2",
        "codex_call_id": "call_p",
        "codex_changes": {"/w/a.txt": {"type": "add", "content": "x"}},
    }
    request = ApprovalRequest.from_elicitation(raw)
    assert (request.kind, request.files, request.thread_id) == ("patch", ["/w/a.txt"], "t-1")
    assert (request.call_id, request.request_id) == ("call_p", "2")
    exec_raw = {
        "codex_elicitation": "exec-approval",
        "codex_command": ["ls", "-la"],
        "codex_cwd": "/w",
    }
    exec_request_ = ApprovalRequest.from_elicitation(exec_raw)
    assert (exec_request_.kind, exec_request_.command_text) == ("exec", "ls -la")
    assert exec_request_.cwd == Path("/w")
