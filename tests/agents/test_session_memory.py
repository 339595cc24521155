"""The session's protocol and turn building against an in-memory codex (no process, no model).

The same behaviours the integration tests check on the real binary (events in order,
approvals, deadlines, errors, tokens per turn), here in milliseconds through the
``streams=`` factory, so that a change to the protocol layer fails fast.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from agents import (
    AgentMessage,
    ApprovalAnswer,
    ApprovalRequest,
    CodexEvent,
    CodexSession,
    PolicyApprover,
    TokenCount,
)
from agents.turns import TurnBuilder, TurnRecord
from orchestrator.exceptions import AgentServerError, AgentTimeoutError
from orchestrator.redaction import Redactor
from schemas import CodexServerConfig, CommandPolicy
from tests.helpers.fake_codex import FakeCall, FakeCodex, FakeError

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(10)]


def config(**fields: object) -> CodexServerConfig:
    return CodexServerConfig.model_validate(
        {"provider": {"base_url": "http://127.0.0.1:9/v1"}, **fields}
    )


async def edit(call: FakeCall) -> str:
    await call.run("grep -c line notes.txt", output="2\n")
    await call.tokens(input_tokens=100, output_tokens=10)
    await call.patch({"notes.txt": "one line\n", "docs/a.md": "# a\n"})
    await call.run("ls missing", exit_code=2, output="ls: missing: No such file\n")
    await call.tokens(input_tokens=100, output_tokens=10)
    await call.event("agent_message", message="thinking aloud")
    return "edited notes.txt"


async def test_a_turn_has_the_commands_patches_tokens_and_every_event_in_order(
    tmp_path: Path,
) -> None:
    seen: list[CodexEvent] = []

    async def record(event: CodexEvent) -> None:
        seen.append(event)

    fake = FakeCodex(edit)
    async with CodexSession(config(), streams=fake.streams, on_event=record) as session:
        turn = await session.start("do it", cwd=tmp_path)

    assert turn.text == "edited notes.txt"
    assert turn.thread_id == fake.calls[0].thread_id
    assert [(c.command, c.exit_code, c.status) for c in turn.commands] == [
        ("grep -c line notes.txt", 0, "completed"),
        ("ls missing", 2, "failed"),
    ]
    assert all(c.cwd == str(tmp_path) and c.duration_ms == 5 for c in turn.commands)
    assert [(p.files, p.success) for p in turn.patches] == [(["docs/a.md", "notes.txt"], True)]
    assert (turn.tokens.input_tokens, turn.tokens.output_tokens) == (200, 20)
    assert [e.type for e in turn.events] == [
        "exec_command_begin",
        "exec_command_end",
        "token_count",
        "patch_apply_begin",
        "patch_apply_end",
        "exec_command_begin",
        "exec_command_end",
        "token_count",
        "agent_message",
    ]
    assert seen == turn.events  # every event reached the subscriber before start returned
    assert turn.request_id == fake.calls[0].request_id
    [call] = fake.calls
    assert call.tool == "codex"
    assert call.arguments == {
        "prompt": "do it",
        "cwd": str(tmp_path),
        "sandbox": "workspace-write",
        "approval-policy": "on-request",
    }


def test_without_a_result_text_the_turn_takes_the_last_message_and_the_events_thread() -> None:
    events: list[CodexEvent] = [
        AgentMessage(type="agent_message", thread_id="t-9", message="first"),
        AgentMessage(type="agent_message", thread_id="t-9", message="the last word"),
    ]
    record = TurnRecord(
        thread_id=None, text=None, events=events, approvals=[], cwd=None, duration_ms=3
    )
    turn = TurnBuilder().build(record)
    assert (turn.thread_id, turn.text, turn.duration_ms) == ("t-9", "the last word", 3)


async def test_a_reply_continues_the_thread_and_counts_only_its_own_tokens(
    tmp_path: Path,
) -> None:
    async def answer(call: FakeCall) -> str:
        await call.tokens(input_tokens=100, output_tokens=10)
        if call.tool == "codex-reply":
            await call.run("true")
        return call.tool

    fake = FakeCodex(answer)
    async with CodexSession(config(), streams=fake.streams) as session:
        first = await session.start("one", cwd=tmp_path)
        second = await session.reply(first.thread_id, "two")

    assert [c.tool for c in fake.calls] == ["codex", "codex-reply"]
    assert fake.calls[1].arguments == {"prompt": "two", "threadId": first.thread_id}
    assert second.thread_id == first.thread_id
    assert (first.tokens.total_tokens, second.tokens.total_tokens) == (110, 110)
    assert [c.cwd for c in second.commands] == [str(tmp_path)]


async def test_concurrent_calls_keep_their_events_apart(tmp_path: Path) -> None:
    async def answer(call: FakeCall) -> str:
        n = call.prompt
        await call.run(f"echo {n}")
        await anyio.lowlevel.checkpoint()  # let the other calls interleave on the wire
        await call.run(f"echo {n} again")
        return f"done {n}"

    fake = FakeCodex(answer)
    turns = {}
    async with CodexSession(config(), streams=fake.streams) as session:

        async def call(n: str) -> None:
            turns[n] = await session.start(n, cwd=tmp_path)

        async with anyio.create_task_group() as tg:
            for n in ("1", "2", "3"):
                tg.start_soon(call, n)

    for n, turn in turns.items():
        assert turn.text == f"done {n}"
        assert [c.command for c in turn.commands] == [f"echo {n}", f"echo {n} again"]
    assert len({t.thread_id for t in turns.values()}) == 3


async def test_approvals_reach_codex_as_its_decisions_and_denials_are_recorded(
    tmp_path: Path,
) -> None:
    async def answer(call: FakeCall) -> str:
        await call.ask(["touch", "inside.txt"])
        await call.ask(["touch", "../outside.txt"])
        return "asked twice"

    async def person(request: ApprovalRequest) -> ApprovalAnswer:
        if request.command_text == "touch inside.txt":
            return ApprovalAnswer(approved=True, reason="fine")
        return ApprovalAnswer(approved=False, reason="not outside the workspace")

    fake = FakeCodex(answer)
    approver = PolicyApprover(CommandPolicy.ASK_PERSON, workspace=tmp_path, escalate=person)
    async with CodexSession(config(), streams=fake.streams, approver=approver) as session:
        turn = await session.start("x", cwd=tmp_path)

    [inside, outside] = turn.approvals
    assert (inside.request.command_text, inside.request.cwd) == ("touch inside.txt", tmp_path)
    assert inside.request.request_id == str(fake.calls[0].request_id)
    assert inside.answer.approved and not outside.answer.approved
    decisions = fake.calls[0].decisions
    assert decisions[0] == "approved"
    assert decisions[1] == {"denied": {"rejection": "not outside the workspace"}}
    assert [(c.command, c.status, c.reason) for c in turn.commands] == [
        ("touch ../outside.txt", "denied", "not outside the workspace")
    ]


async def test_an_approver_that_never_answers_is_a_denial_within_the_call_deadline(
    tmp_path: Path,
) -> None:
    async def never(request: ApprovalRequest) -> ApprovalAnswer:
        await anyio.Event().wait()
        raise AssertionError("unreachable")

    async def answer(call: FakeCall) -> str:
        await call.ask(["rm", "-rf", "/"])
        return "went on"

    fake = FakeCodex(answer)
    async with CodexSession(
        config(call_timeout_seconds=0.2), streams=fake.streams, approver=never
    ) as session:
        turn = await session.start("x", cwd=tmp_path, timeout=5)

    assert turn.text == "went on"
    assert fake.calls[0].decisions == [{"denied": {"rejection": "no decision within 0.2s"}}]


async def test_an_error_result_is_a_server_error_with_the_text_redacted(tmp_path: Path) -> None:
    secret = "sk-test-" + "q" * 30

    async def fail(call: FakeCall) -> str:
        raise FakeError(f"upstream said: bad key {secret} " + "x" * 5000)

    redactor = Redactor()
    fake = FakeCodex(fail)
    session = CodexSession(
        config(provider={"base_url": "http://127.0.0.1:9/v1", "env_key": "OPENAI_API_KEY"}),
        env={"OPENAI_API_KEY": secret},
        streams=fake.streams,
        redactor=redactor,
    )
    async with session:
        with pytest.raises(AgentServerError) as caught:
            await session.start("x", cwd=tmp_path)

    message = str(caught.value)
    assert message.startswith("codex codex call failed: upstream said: bad key ***")
    assert secret not in message and len(message) < 2100
    assert caught.value.tool == "codex"
    assert [launch.env for launch in fake.launches] == [{"OPENAI_API_KEY": secret}]


async def test_a_call_past_its_deadline_times_out_and_the_next_one_works(tmp_path: Path) -> None:
    async def answer(call: FakeCall) -> str:
        if call.prompt == "slow":
            await anyio.sleep(30)
        return "quick"

    fake = FakeCodex(answer)
    async with CodexSession(config(), streams=fake.streams) as session:
        with pytest.raises(AgentTimeoutError, match=r"within 0\.2s"):
            await session.start("slow", cwd=tmp_path, timeout=0.2)
        turn = await session.start("fast", cwd=tmp_path)
    assert turn.text == "quick"


async def test_a_server_that_goes_away_mid_call_is_a_clear_error(tmp_path: Path) -> None:
    async def answer(call: FakeCall) -> str:
        await call.run("sleep 100")
        await fake.hang_up()
        await anyio.sleep(30)
        return "never"

    fake = FakeCodex(answer)
    async with CodexSession(config(), streams=fake.streams) as session:
        with pytest.raises(AgentServerError, match=r"died during codex \(its connection closed\)"):
            await session.start("x", cwd=tmp_path)
        assert not session.alive
        with pytest.raises(AgentServerError, match="not running"):
            await session.start("again", cwd=tmp_path)
    assert (session.pid, session.codex_home) == (None, None)


async def test_a_session_that_is_not_open_refuses_calls(tmp_path: Path) -> None:
    session = CodexSession(config(), streams=FakeCodex(edit).streams)
    with pytest.raises(AgentServerError, match="not open"):
        await session.start("x", cwd=tmp_path)
    async with session:
        assert session.alive
    assert not session.alive


async def test_token_counts_and_command_output_are_typed_events(tmp_path: Path) -> None:
    fake = FakeCodex(edit)
    async with CodexSession(config(), streams=fake.streams) as session:
        turn = await session.start("x", cwd=tmp_path)
    counts = [e for e in turn.events if isinstance(e, TokenCount)]
    assert [c.total.total_tokens for c in counts if c.total] == [110, 220]
    assert [e.output for e in turn.exec_results] == ["2\n", "ls: missing: No such file\n"]
