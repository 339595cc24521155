"""Codex servers started ahead of their calls (agents.warm) on the real codex binary."""

from __future__ import annotations

import contextvars
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents import ApprovalAnswer, ApprovalRequest, CodexSession, PolicyApprover, render_marker
from agents.warm import WarmSessions
from orchestrator.exceptions import AgentServerError
from schemas import CodexServerConfig, CommandPolicy

from .conftest import alive, wait_until_gone

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(60)]


def prompt(case: str) -> str:
    return f"{render_marker({'role': 'test', 'case': case})}\n"


class OpenedSession(CodexSession):
    """A session that says when it is open."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = anyio.Event()

    async def __aenter__(self) -> OpenedSession:
        await super().__aenter__()
        self.opened.set()
        return self


class Recorder:
    """A session factory that remembers every session it made."""

    def __init__(self, config: CodexServerConfig, **options: Any) -> None:
        self.config = config
        self.options = options
        self.made: list[OpenedSession] = []
        self._made_more = anyio.Event()

    def __call__(self) -> CodexSession:
        session = OpenedSession(self.config, **self.options)
        self.made.append(session)
        self._made_more.set()
        return session

    async def started(self, count: int) -> list[int]:
        """The pids of the first ``count`` sessions, once their servers run."""
        with anyio.fail_after(15):
            while len(self.made) < count:
                self._made_more = anyio.Event()
                await self._made_more.wait()
            for session in self.made[:count]:
                await session.opened.wait()
        return [s.pid for s in self.made[:count] if s.pid is not None]


async def one_spare(config: CodexServerConfig) -> tuple[Recorder, WarmSessions, int]:
    """A pool told of one call, once that call's server runs; and its pid."""
    recorder = Recorder(config)
    pool = WarmSessions(recorder)
    pool.prepare(1)
    [pid] = await recorder.started(1)
    return recorder, pool, pid


async def test_a_prepared_server_is_running_before_its_call_and_serves_it(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    recorder, pool, pid = await one_spare(codex_config)
    assert alive(pid)
    try:
        async with pool.session() as session:
            assert session.pid == pid
            turn = await session.start(prompt("hello"), cwd=git_repo)
        assert turn.text
    finally:
        await pool.aclose()
    assert len(recorder.made) == 1
    assert wait_until_gone({pid}, seconds=5) == set()


async def test_each_call_gets_a_server_of_its_own_and_the_next_one_starts_meanwhile(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    recorder = Recorder(codex_config)
    pool = WarmSessions(recorder)
    pool.prepare(2)
    try:
        async with pool.session() as first:
            # Taking the first starts the second call's server while the first call runs.
            [first_pid, second_pid] = await recorder.started(2)
            assert first.pid == first_pid
            await first.start(prompt("hello"), cwd=git_repo)
        async with pool.session() as second:
            assert second.pid == second_pid
            await second.start(prompt("hello"), cwd=git_repo)
        homes = [s.codex_home for s in recorder.made]
    finally:
        await pool.aclose()
    assert len(recorder.made) == 2, "no server beyond the calls announced"
    assert wait_until_gone({first_pid, second_pid}, seconds=5) == set()
    assert not any(home is not None and home.exists() for home in homes)


async def test_closing_the_pool_stops_a_server_nobody_used(
    codex_config: CodexServerConfig,
) -> None:
    recorder, pool, pid = await one_spare(codex_config)
    home = recorder.made[0].codex_home
    await pool.aclose()
    assert wait_until_gone({pid}, seconds=5) == set()
    assert home is not None and not home.exists()
    pool.prepare(1)  # a closed pool starts nothing
    assert len(recorder.made) == 1


async def test_a_server_that_died_while_waiting_is_replaced(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    recorder, pool, pid = await one_spare(codex_config)
    os.kill(pid, signal.SIGKILL)
    with anyio.fail_after(5):
        while recorder.made[0].alive:  # noqa: ASYNC110 - no event for another process's death
            await anyio.sleep(0.02)
    try:
        async with pool.session() as session:
            assert session.pid != pid
            await session.start(prompt("hello"), cwd=git_repo)
    finally:
        await pool.aclose()


async def test_a_server_that_cannot_start_fails_the_call_that_takes_it(
    codex_config: CodexServerConfig,
) -> None:
    broken = codex_config.model_copy(update={"codex_command": "/nonexistent/codex"})
    pool = WarmSessions(Recorder(broken))
    pool.prepare(1)
    try:
        with pytest.raises(AgentServerError, match="could not start codex"):
            async with pool.session():
                pass
    finally:
        await pool.aclose()


async def test_approvals_are_decided_in_the_calling_task_context(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    """The server was started by another task; the approver still sees the caller's
    context (in a flow that is the flow run to pause and the run logger)."""
    caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="pool")
    seen: list[str] = []

    async def person(request: ApprovalRequest) -> ApprovalAnswer:
        seen.append(caller.get())
        return ApprovalAnswer(approved=True, reason="ok")

    approver = PolicyApprover(CommandPolicy.ASK_PERSON, workspace=git_repo, escalate=person)
    pool = WarmSessions(Recorder(codex_config, approver=approver))
    pool.prepare(1)
    caller.set("the calling task")
    try:
        async with pool.session() as session:
            turn = await session.start(
                prompt("untrusted"), cwd=git_repo, approval_policy="untrusted"
            )
    finally:
        await pool.aclose()
    assert seen == ["the calling task"]
    assert [a.answer.approved for a in turn.approvals] == [True]
