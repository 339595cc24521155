"""The policy approver: commands always to a person (or denied), patches by their files."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from agents import ApprovalAnswer, ApprovalRequest, PolicyApprover
from schemas import ApprovalSettings, CommandPolicy
from schemas.documents import generate_schema

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


POLICIES = list(CommandPolicy)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "command",
    [
        "touch approved.txt",
        "python -m pytest -q tests/",
        "python3 -c \"import pathlib; (pathlib.Path.home() / 'm').write_text('x')\"",
    ],
)
async def test_no_policy_approves_a_command_by_itself(
    tmp_path: Path, policy: CommandPolicy, command: str
) -> None:
    """Every exec request asks to leave the sandbox: no policy reads the command and says yes."""
    approver = PolicyApprover(policy, workspace=tmp_path)
    answer = await approver(exec_request(command, tmp_path))
    assert not answer.approved
    if policy is not CommandPolicy.DENY:
        assert answer.reason == (
            "no person can be asked (an approved command would run outside the sandbox): denied"
        )


@pytest.mark.parametrize("policy", [CommandPolicy.PATCHES_IN_WORKSPACE, CommandPolicy.ASK_PERSON])
async def test_a_command_goes_to_the_person_under_every_policy_but_deny(
    tmp_path: Path, policy: CommandPolicy
) -> None:
    person = Person(ApprovalAnswer(approved=True, reason="ok by alice"))
    approver = PolicyApprover(policy, workspace=tmp_path, escalate=person)
    answer = await approver(exec_request("touch inside.txt", tmp_path))
    assert answer.reason == "ok by alice"
    assert [r.command_text for r in person.asked] == ["touch inside.txt"]


async def test_an_unattended_run_names_why_no_one_was_asked(tmp_path: Path) -> None:
    approver = PolicyApprover(
        CommandPolicy.PATCHES_IN_WORKSPACE, workspace=tmp_path, no_person="unattended run"
    )
    answer = await approver(exec_request("ls", tmp_path))
    assert answer == ApprovalAnswer(
        approved=False,
        reason="unattended run (an approved command would run outside the sandbox): denied",
    )


def patch(cwd: Path, *files: str, move_to: str | None = None) -> ApprovalRequest:
    change: dict[str, object] = {"update": {"unified_diff": "", "move_path": move_to}}
    return ApprovalRequest(kind="patch", cwd=cwd, changes=dict.fromkeys(files, change))


async def test_patches_inside_the_workspace_are_approved_by_their_files(tmp_path: Path) -> None:
    approver = PolicyApprover(CommandPolicy.PATCHES_IN_WORKSPACE, workspace=tmp_path)
    answer = await approver(patch(tmp_path, str(tmp_path / "a.py"), "sub/b.py"))
    assert answer == ApprovalAnswer(
        approved=True, reason="every file of the patch is inside the workspace"
    )


@pytest.mark.parametrize(
    ("files", "move_to", "outside"),
    [
        (["/etc/passwd"], None, "/etc/passwd"),
        (["../outside.txt"], None, "../outside.txt"),
        (["sub/../../outside.txt"], None, "sub/../../outside.txt"),
        (["link/evil.txt"], None, "link/evil.txt"),  # a symlink out of the workspace
        (["a.py"], "/etc/cron.d/x", "/etc/cron.d/x"),  # moved out
    ],
)
async def test_patches_reaching_outside_are_denied_without_a_person(
    tmp_path: Path, files: list[str], move_to: str | None, outside: str
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "link").symlink_to(tmp_path)
    approver = PolicyApprover(CommandPolicy.PATCHES_IN_WORKSPACE, workspace=workspace)
    answer = await approver(patch(workspace, *files, move_to=move_to))
    assert answer == ApprovalAnswer(
        approved=False, reason=f"denied by policy: {outside} is outside the workspace"
    )


async def test_a_patch_outside_goes_to_the_person_when_there_is_one(tmp_path: Path) -> None:
    person = Person(ApprovalAnswer(approved=False, reason="no, says alice"))
    approver = PolicyApprover(
        CommandPolicy.PATCHES_IN_WORKSPACE, workspace=tmp_path / "ws", escalate=person
    )
    answer = await approver(patch(tmp_path, str(tmp_path / "x.py")))
    assert answer.reason == "no, says alice"
    assert [r.files for r in person.asked] == [[str(tmp_path / "x.py")]]


async def test_ask_person_asks_even_for_a_patch_inside(tmp_path: Path) -> None:
    person = Person(ApprovalAnswer(approved=True, reason="fine"))
    approver = PolicyApprover(CommandPolicy.ASK_PERSON, workspace=tmp_path, escalate=person)
    assert (await approver(patch(tmp_path, "a.py"))).reason == "fine"
    assert len(person.asked) == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [("allow_in_workspace", "patches_in_workspace"), ("escalate", "ask_person")],
)
def test_old_policy_names_are_read_as_the_new_ones(old: str, new: str) -> None:
    settings = ApprovalSettings.model_validate({"commands": old})
    assert settings.commands is CommandPolicy(new)
    assert old in generate_schema("task-spec")["$defs"]["CommandPolicy"]["enum"]


async def test_deny_never_asks(tmp_path: Path) -> None:
    person = Person(ApprovalAnswer(approved=True))
    approver = PolicyApprover(CommandPolicy.DENY, workspace=tmp_path, escalate=person)
    answer = await approver(exec_request("ls", tmp_path))
    assert not answer.approved and not person.asked


async def test_escalate_asks_for_everything(tmp_path: Path) -> None:
    person = Person(ApprovalAnswer(approved=False, reason="not today"))
    approver = PolicyApprover(CommandPolicy.ASK_PERSON, workspace=tmp_path, escalate=person)
    assert await approver(exec_request("ls", tmp_path)) == ApprovalAnswer(
        approved=False, reason="not today"
    )


async def test_an_escalation_past_its_deadline_is_a_denial(tmp_path: Path) -> None:
    approver = PolicyApprover(
        CommandPolicy.ASK_PERSON, workspace=tmp_path, escalate=Person(), timeout=0.05
    )
    with anyio.fail_after(5):
        answer = await approver(exec_request("ls", tmp_path))
    assert answer == ApprovalAnswer(approved=False, reason="no decision within 0.05s: denied")


async def test_a_failing_or_missing_escalation_is_a_denial(tmp_path: Path) -> None:
    failing = PolicyApprover(
        CommandPolicy.ASK_PERSON, workspace=tmp_path, escalate=Person(fail=True)
    )
    missing = PolicyApprover(CommandPolicy.ASK_PERSON, workspace=tmp_path)
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
