"""The session client against the real codex binary and the replay provider."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from agents import (
    ApprovalAnswer,
    ApprovalRequest,
    CodexEvent,
    ExecCommandBegin,
    ExecCommandEnd,
    PatchApplyEnd,
    PolicyApprover,
    TokenCount,
    render_marker,
)
from agents.backend import new_session
from devstack.replay import ReplayProcess, ReplayServer, replay_config
from orchestrator.exceptions import AgentServerError, AgentTimeoutError, InvalidInputError
from schemas import AgentBackend, CodexServerConfig, CommandPolicy, ModelCatalogEntry
from tests.helpers.canary import scan_cmdlines_for

from .conftest import (
    TEST_FIXTURES,
    alive,
    descendants,
    process_environment,
    read_text,
    wait_until_gone,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(60)]


def prompt(case: str, text: str = "", **attributes: str) -> str:
    return f"{render_marker({'role': 'test', 'case': case, **attributes})}\n{text}\n"


async def test_a_call_edits_files_in_the_sandbox_and_reports_commands_patches_and_tokens(
    codex_config: CodexServerConfig, git_repo: Path, replay: ReplayServer
) -> None:
    seen: list[CodexEvent] = []

    async def record(event: CodexEvent) -> None:
        seen.append(event)

    async with new_session(codex_config) as session:
        turn = await session.start(prompt("edit"), cwd=git_repo, on_event=record)

    assert (git_repo / "notes.txt").read_text() == "first line\nsecond line\n"
    assert "Edited by the builder." in (git_repo / "README.md").read_text()
    assert turn.text == "edited notes.txt and README.md"
    assert turn.thread_id
    assert [(c.command, c.exit_code) for c in turn.commands] == [
        ("grep -c line notes.txt", 0),
        ("ls no-such-file", 2),
    ]
    assert all(c.cwd == str(git_repo) for c in turn.commands)
    assert [(p.files, p.success) for p in turn.patches] == [(["README.md", "notes.txt"], True)]
    begins = [e for e in turn.events if isinstance(e, ExecCommandBegin)]
    ends = [e for e in turn.events if isinstance(e, ExecCommandEnd)]
    assert [e.call_id for e in begins] == [e.call_id for e in ends]
    assert ends[0].output.strip() == "2"
    assert any(isinstance(e, PatchApplyEnd) for e in turn.events)
    # four model requests of the scripted usage (1200 in, 80 out each)
    assert turn.tokens.input_tokens == 4 * 1200
    assert turn.tokens.output_tokens == 4 * 80
    assert turn.tokens.total_tokens == 4 * 1280
    assert any(isinstance(e, TokenCount) for e in turn.events)
    assert turn.duration_ms > 0
    assert seen == turn.events  # subscribers get every event, in order
    assert [r["step"] for r in replay.requests()] == [0, 1, 2, 3]
    assert "apply_patch" in replay.requests()[0]["tools"]


MARKER = "marker-escalated"
"""What the ``escalate-home`` fixture's command writes into the home folder."""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The codex server's home folder (its HOME): the test's own, outside the workspace
    and every writable root of the sandbox."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("policy", list(CommandPolicy))
async def test_an_escalation_never_runs_without_a_person_under_any_policy(
    codex_config: CodexServerConfig, git_repo: Path, home: Path, policy: CommandPolicy
) -> None:
    """The command names no path, so no reading of it could tell it writes the home folder."""
    approver = PolicyApprover(policy, workspace=git_repo)
    env = {"HOME": str(home)}
    async with new_session(codex_config, env=env, approver=approver) as session:
        turn = await session.start(prompt("escalate-home"), cwd=git_repo)

    assert not (home / MARKER).exists()
    [record] = turn.approvals
    assert record.request.kind == "exec" and not record.answer.approved
    assert not [e for e in turn.events if isinstance(e, ExecCommandEnd) and e.exit_code is not None]
    [command] = turn.commands
    assert (command.status, command.exit_code) == ("denied", None)
    assert command.reason == record.answer.reason
    assert command.reason and "denied" in command.reason
    assert turn.text == "asked to write the marker"  # the turn went on after the denial


async def test_an_escalation_a_person_approves_runs_outside_the_sandbox(
    codex_config: CodexServerConfig, git_repo: Path, home: Path
) -> None:
    asked: list[ApprovalRequest] = []

    async def person(request: ApprovalRequest) -> ApprovalAnswer:
        asked.append(request)
        return ApprovalAnswer(approved=True, reason="approved by alice")

    approver = PolicyApprover(
        CommandPolicy.PATCHES_IN_WORKSPACE, workspace=git_repo, escalate=person
    )
    env = {"HOME": str(home)}
    async with new_session(codex_config, env=env, approver=approver) as session:
        turn = await session.start(prompt("escalate-home"), cwd=git_repo)

    # The home folder is read-only inside the sandbox: only an unsandboxed command wrote it.
    assert (home / MARKER).read_text() == "x"
    assert [r.command_text for r in asked] == [
        "python3 -c \"import pathlib; (pathlib.Path.home() / 'marker-escalated').write_text('x')\""
    ]
    assert [(c.status, c.exit_code) for c in turn.commands] == [("completed", 0)]


async def test_a_person_who_never_decides_is_a_denial_and_the_turn_goes_on(
    codex_config: CodexServerConfig, git_repo: Path, home: Path
) -> None:
    async def absent(request: ApprovalRequest) -> ApprovalAnswer:
        await anyio.Event().wait()
        raise AssertionError("never decides")

    approver = PolicyApprover(
        CommandPolicy.ASK_PERSON, workspace=git_repo, escalate=absent, timeout=0.5
    )
    async with new_session(codex_config, env={"HOME": str(home)}, approver=approver) as session:
        with anyio.fail_after(20):
            turn = await session.start(prompt("escalate-home"), cwd=git_repo)

    assert not (home / MARKER).exists()
    [command] = turn.commands
    assert (command.status, command.reason) == ("denied", "no decision within 0.5s: denied")
    assert turn.text == "asked to write the marker"


@pytest.mark.parametrize("approved", [False, True])
async def test_a_patch_outside_the_workspace_goes_to_the_approver_with_its_paths(
    codex_config: CodexServerConfig, git_repo: Path, approved: bool
) -> None:
    outside = git_repo.parent / "outside-patch.txt"
    asked: list[ApprovalRequest] = []

    async def person(request: ApprovalRequest) -> ApprovalAnswer:
        asked.append(request)
        return ApprovalAnswer(approved=approved, reason="checked by alice")

    approver = PolicyApprover(
        CommandPolicy.PATCHES_IN_WORKSPACE, workspace=git_repo, escalate=person
    )
    async with new_session(codex_config, approver=approver) as session:
        turn = await session.start(prompt("patch-outside"), cwd=git_repo)

    [request] = asked
    assert request.kind == "patch"
    assert request.files == [str(outside)]
    assert [(a.answer.approved, a.answer.reason) for a in turn.approvals] == [
        (approved, "checked by alice")
    ]
    assert outside.exists() is approved
    if approved:
        assert outside.read_text() == "written by a patch\n"
    assert turn.text == "tried the patch outside"


async def test_the_deny_policy_refuses_even_inside_the_workspace(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    approver = PolicyApprover(CommandPolicy.DENY, workspace=git_repo)
    async with new_session(codex_config, approver=approver) as session:
        turn = await session.start(prompt("escalate-inside"), cwd=git_repo)

    assert not (git_repo / "approved.txt").exists()
    assert [a.answer.approved for a in turn.approvals] == [False]


async def test_untrusted_asks_before_an_ordinary_command_and_a_person_decides(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    asked: list[str] = []

    async def person(request: ApprovalRequest) -> ApprovalAnswer:
        asked.append(request.command_text)
        return ApprovalAnswer(approved=True, reason="looks fine")

    approver = PolicyApprover(CommandPolicy.ASK_PERSON, workspace=git_repo, escalate=person)
    async with new_session(codex_config, approver=approver) as session:
        turn = await session.start(prompt("untrusted"), cwd=git_repo, approval_policy="untrusted")

    assert asked == ["touch asked.txt"]
    assert (git_repo / "asked.txt").exists()
    assert [a.answer.reason for a in turn.approvals] == ["looks fine"]


async def test_concurrent_calls_on_one_session_keep_their_events_apart(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    turns = {}
    async with new_session(codex_config) as session:

        async def call(n: str) -> None:
            turns[n] = await session.start(prompt("parallel", n=n), cwd=git_repo)

        async with anyio.create_task_group() as tg:
            for n in ("1", "2", "3"):
                tg.start_soon(call, n)

    assert len({t.thread_id for t in turns.values()}) == 3
    for n, turn in turns.items():
        assert [c.command for c in turn.commands] == [f"echo {n} > parallel-{n}.txt"]
        assert turn.text == f"wrote parallel-{n}.txt"
        assert (git_repo / f"parallel-{n}.txt").read_text() == f"{n}\n"


async def test_reply_continues_the_thread_and_counts_only_its_own_tokens(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    async with new_session(codex_config) as session:
        first = await session.start(prompt("reply-first"), cwd=git_repo)
        second = await session.reply(first.thread_id, prompt("reply-second"))

    assert (first.text, second.text) == ("first answer", "second answer")
    assert second.thread_id == first.thread_id
    assert first.tokens.input_tokens == 1200
    assert second.tokens.input_tokens == 2 * 1200
    assert [c.cwd for c in second.commands] == [str(git_repo)]


async def test_an_unknown_prompt_raises_a_server_error_naming_the_fixture_set(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    async with new_session(codex_config) as session:
        with anyio.fail_after(10), pytest.raises(AgentServerError) as caught:
            await session.start(prompt("no-such-case"), cwd=git_repo)

    message = str(caught.value)
    assert "session-tests" in message
    assert "case=no-such-case" in message
    assert caught.value.tool == "codex"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("429", "429 Too Many Requests"),
        ("500", "high demand"),
        ("broken_stream", "stream disconnected before completion"),
    ],
)
async def test_model_faults_become_server_errors_quickly(
    codex_config: CodexServerConfig,
    git_repo: Path,
    replay: ReplayServer,
    fault: str,
    expected: str,
) -> None:
    replay.add_faults(fault)  # type: ignore[arg-type]
    async with new_session(codex_config) as session:
        with anyio.fail_after(10), pytest.raises(AgentServerError, match=expected):
            await session.start(prompt("hello"), cwd=git_repo)
        # the next thread works again
        turn = await session.start(prompt("hello"), cwd=git_repo)
    assert turn.text == "said hello"


async def test_a_call_past_its_deadline_raises_a_timeout_error(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    async with new_session(codex_config) as session:
        with anyio.fail_after(10), pytest.raises(AgentTimeoutError, match=r"within 0\.5s"):
            await session.start(prompt("slow"), cwd=git_repo, timeout=0.5)
        turn = await session.start(prompt("hello"), cwd=git_repo)
    assert turn.text == "said hello"


async def test_killing_codex_mid_call_raises_and_leaves_no_process(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    running = anyio.Event()

    async def on_event(event: CodexEvent) -> None:
        if isinstance(event, ExecCommandBegin):
            running.set()

    async with new_session(codex_config) as session:
        pid = session.pid
        assert pid is not None
        children: set[int] = set()

        async def kill_when_running() -> None:
            await running.wait()
            children.update(descendants(pid))
            os.kill(pid, signal.SIGKILL)

        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_when_running)
            with anyio.fail_after(10), pytest.raises(AgentServerError) as caught:
                await session.start(prompt("sleep"), cwd=git_repo, on_event=on_event)

        assert "died during codex" in str(caught.value)
        assert "exit code -9" in str(caught.value)
        assert not session.alive
        with pytest.raises(AgentServerError, match="not running"):
            await session.start(prompt("hello"), cwd=git_repo)

    assert children, "the sleep command should have been running under codex"
    assert wait_until_gone({pid, *children}, seconds=5) == set()


async def test_closing_the_session_stops_codex_and_removes_its_home(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    async with new_session(codex_config) as session:
        pid = session.pid
        home = session.codex_home
        assert pid is not None and home is not None
        assert alive(pid)
        assert (home / "config.toml").exists()
        assert home.stat().st_mode & 0o777 == 0o700
        await session.start(prompt("hello"), cwd=git_repo)
    assert not alive(pid)
    assert not home.exists()


async def test_credentials_reach_codex_from_the_env_mapping_only(
    replay: ReplayServer, git_repo: Path, monkeypatch: pytest.MonkeyPatch, backend: AgentBackend
) -> None:
    monkeypatch.setenv("AMBIENT_SECRET", "not-for-codex-4711")
    key = "sk-test-" + "x" * 32
    config = CodexServerConfig.model_validate(
        {"backend": backend, "provider": {"base_url": replay.url, "env_key": "OPENAI_API_KEY"}}
    )
    async with new_session(config, env={"OPENAI_API_KEY": key}) as session:
        assert session.pid is not None and session.codex_home is not None
        environ = process_environment(session.pid)
        config_text = read_text(session.codex_home / "config.toml")
        turn = await session.start(prompt("hello"), cwd=git_repo)
        on_command_lines = scan_cmdlines_for(key)

    assert f"OPENAI_API_KEY={key}".encode() in environ
    assert not any(entry.startswith(b"AMBIENT_SECRET=") for entry in environ)
    assert key not in config_text
    assert on_command_lines == []
    assert 'env_key = "OPENAI_API_KEY"' in config_text
    assert turn.text == "said hello"


async def test_a_server_that_exits_at_start_up_is_a_clear_error(
    replay: ReplayServer, backend: AgentBackend
) -> None:
    broken_catalog = ModelCatalogEntry(slug="replay", overrides={"shell_type": "no-such-shell"})
    config = CodexServerConfig.model_validate(
        {
            "backend": backend,
            "provider": {"base_url": replay.url},
            "model_catalog": [broken_catalog],
        }
    )
    with anyio.fail_after(15), pytest.raises(AgentServerError) as caught:
        async with new_session(config):
            pass
    assert "died during initialize" in str(caught.value)
    assert "model_catalog_json" in str(caught.value)


async def test_a_missing_codex_executable_is_a_clear_error(
    replay: ReplayServer, backend: AgentBackend
) -> None:
    config = CodexServerConfig.model_validate(
        {
            "backend": backend,
            "provider": {"base_url": replay.url},
            "codex_command": "/nonexistent/codex",
        }
    )
    with pytest.raises(AgentServerError, match=f"could not start codex {backend}"):
        async with new_session(config):
            pass


async def test_a_codex_home_under_tmp_is_refused(
    replay: ReplayServer, tmp_path: Path, backend: AgentBackend
) -> None:
    config = CodexServerConfig.model_validate(
        {"backend": backend, "provider": {"base_url": replay.url}}
    )
    with pytest.raises(InvalidInputError, match="sandbox helper"):
        async with new_session(config, codex_home=tmp_path / "codex-home"):
            pass


async def test_codex_talks_to_the_replay_provider_run_as_a_subprocess(
    git_repo: Path, tmp_path: Path, backend: AgentBackend
) -> None:
    log = tmp_path / "requests.jsonl"
    with ReplayProcess.spawn(TEST_FIXTURES / "session", request_log=log) as replay:
        async with new_session(replay_config(replay.url, backend=backend)) as session:
            turn = await session.start(prompt("hello"), cwd=git_repo)
    assert turn.text == "said hello"
    assert len(read_text(log).splitlines()) == 2
