"""The restart rule of ``agents.durable`` with stand-in sessions (no codex): which
interrupted steps continue their thread, which are redone, and what the step records.

The real thing (app-server resuming a thread from a kept CODEX_HOME) is
``test_durable.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.durable import (
    CONTINUE_NOTE,
    REDO_NOTE,
    begin_attempt,
    kept_codex_home,
    kept_worktree,
    step_codex_home,
)
from agents.events import CodexEvent, SessionConfigured
from agents.turns import Turn
from orchestrator.exceptions import AgentServerError
from orchestrator.lifecycle import RunHandle, begin_step
from orchestrator.workspace import Workspace
from schemas import (
    AgentBackend,
    AgentRole,
    CodemodUse,
    CodexServerConfig,
    PhaseName,
    RunManifest,
    StepStatus,
    SubtaskRecord,
    TokenUsage,
)
from tests.conftest import sample_manifest

pytestmark = pytest.mark.anyio

CONFIG = CodexServerConfig.model_validate({"provider": {"base_url": "http://127.0.0.1:9/v1"}})
THREAD = "thread-of-the-killed-attempt"


@dataclass
class StandIn:
    """A session that records what it is asked; ``refuse`` makes ``resume_thread`` fail."""

    backend: AgentBackend
    refuse: str | None = None
    config: CodexServerConfig = field(default_factory=lambda: CONFIG)
    codex_version: str | None = "0.0.0"
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def resume_thread(self, thread_id: str) -> None:
        self.asked.append(("resume", thread_id))
        if self.refuse:
            raise AgentServerError(self.refuse, tool="thread/resume")

    async def start(self, prompt: str, *, cwd: Path, **_: object) -> Turn:
        self.asked.append(("start", prompt))
        return _turn("new-thread")

    async def reply(self, thread_id: str, prompt: str, **_: object) -> Turn:
        self.asked.append(("reply", thread_id))
        self.asked.append(("prompt", prompt))
        return _turn(thread_id)


def _turn(thread_id: str) -> Turn:
    return Turn(
        thread_id=thread_id,
        text="{}",
        commands=[],
        patches=[],
        tokens=TokenUsage(),
        duration_ms=1,
        events=[],
    )


@pytest.fixture
def run(workspace: Workspace) -> RunHandle:
    manifest = sample_manifest(run_id="durable-rule")
    workspace.store.create(manifest, actor="test")
    return RunHandle(workspace, manifest.task_id, manifest.run_id)


def interrupted(run: RunHandle, *, backend: AgentBackend, thread: str | None = THREAD) -> None:
    """The plan step as a killed attempt leaves it: running, its thread recorded."""

    def mark(m: RunManifest) -> None:
        step = m.step("plan")
        assert step is not None
        step.backend, step.thread_id = backend, thread

    begin_step(run, PhaseName.PLAN, "plan", AgentRole.PLANNER, also=mark)


async def test_a_first_attempt_starts_a_thread_and_records_it_when_it_starts(
    run: RunHandle,
) -> None:
    session = StandIn("app-server")
    attempt = await begin_attempt(run, "plan", session)
    assert (attempt.note, attempt.restart, attempt.session) == ("", None, session)

    begin_step(run, PhaseName.PLAN, "plan", AgentRole.PLANNER, also=attempt.record("plan"))
    assert run.read().step("plan").thread_id is None  # type: ignore[union-attr]
    started: CodexEvent = SessionConfigured(type=SessionConfigured.TYPE, thread_id="t-1")
    await attempt.on_event(started)
    assert run.read().step("plan").thread_id == "t-1"  # type: ignore[union-attr]


async def test_an_interrupted_app_server_step_continues_its_thread(run: RunHandle) -> None:
    interrupted(run, backend="app-server")
    session = StandIn("app-server")

    attempt = await begin_attempt(run, "plan", session)
    turn = await attempt.session.start("the planner's prompt", cwd=Path("."))

    assert attempt.continued and attempt.note == ""
    assert session.asked == [("resume", THREAD), ("reply", THREAD), ("prompt", CONTINUE_NOTE)]
    assert turn.thread_id == THREAD
    begin_step(run, PhaseName.PLAN, "plan", AgentRole.PLANNER, also=attempt.record("plan"))
    step = run.read().step("plan")
    assert step is not None and step.restart is not None
    assert (step.attempt, step.thread_id, step.restart.continued) == (2, THREAD, True)


async def test_a_thread_the_server_cannot_resume_is_redone_from_the_start(
    run: RunHandle,
) -> None:
    interrupted(run, backend="app-server")
    session = StandIn("app-server", refuse="no rollout found for thread id x")

    attempt = await begin_attempt(run, "plan", session)
    await attempt.session.start("the planner's prompt", cwd=Path("."))

    assert not attempt.continued and attempt.note == REDO_NOTE
    assert session.asked == [("resume", THREAD), ("start", "the planner's prompt")]
    assert attempt.restart is not None
    assert attempt.restart.reason == (
        "redone: its thread could not be resumed: no rollout found for thread id x"
    )


async def test_mcp_keeps_its_rule_an_interrupted_step_is_redone_on_a_new_thread(
    run: RunHandle,
) -> None:
    interrupted(run, backend="mcp")
    session = StandIn("mcp")

    attempt = await begin_attempt(run, "plan", session)

    assert session.asked == [] and attempt.note == REDO_NOTE
    assert attempt.restart is not None and not attempt.restart.continued
    assert attempt.restart.reason == "redone: codex mcp-server threads do not outlive their server"


async def test_a_step_killed_before_its_thread_started_is_redone_with_the_note(
    run: RunHandle,
) -> None:
    interrupted(run, backend="app-server", thread=None)
    session = StandIn("app-server")
    attempt = await begin_attempt(run, "plan", session)
    assert (session.asked, attempt.restart, attempt.note) == ([], None, REDO_NOTE)


async def test_a_failed_step_is_redone_without_asking_to_resume(run: RunHandle) -> None:
    interrupted(run, backend="app-server")
    run.update(lambda m: setattr(m.step("plan"), "status", StepStatus.FAILED))
    session = StandIn("app-server")
    attempt = await begin_attempt(run, "plan", session)
    assert (session.asked, attempt.restart, attempt.note) == ([], None, REDO_NOTE)


def test_a_build_goes_on_only_in_the_worktree_it_left_without_codemods(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    record = SubtaskRecord(id="a", title="A", worktree=str(tree), branch="b")
    assert kept_worktree(tmp_path, record) == "its worktree is gone"
    (tree / ".git").mkdir(parents=True)
    kept = kept_worktree(tmp_path, record)
    assert not isinstance(kept, str) and (kept.path, kept.branch) == (tree, "b")
    with_codemods = record.model_copy(update={"codemods": [CodemodUse(use="rename@1.0.0")]})
    assert kept_worktree(tmp_path, with_codemods) == (
        "the subtask's codemods run on a clean worktree"
    )


def test_the_kept_home_is_private_never_under_tmp_and_removed_when_the_step_ends(
    run: RunHandle,
) -> None:
    home = step_codex_home(run, "plan")
    assert not str(home.resolve()).startswith("/tmp/"), "codex's sandbox breaks under /tmp"
    with kept_codex_home(run, "plan") as kept:
        assert kept == home and (home.stat().st_mode & 0o777) == 0o700
    assert not home.exists()
    with pytest.raises(RuntimeError), kept_codex_home(run, "plan"):
        raise RuntimeError("the step failed")
    assert not home.exists()
