"""Durable threads: an agent step on ``app-server`` interrupted mid-call goes on with its
thread after a resume, instead of starting over.

``codex app-server`` keeps its threads in CODEX_HOME (rollout files and SQLite), and a new
server on the same home continues one (``thread/resume``). So a step on app-server runs
on a CODEX_HOME of its own, kept in the run folder while the step runs
(:func:`kept_codex_home`), and records its thread id in the manifest as soon as the
thread starts (:func:`begin_attempt`'s event callback). A resumed run finds such a step
still ``running``: the new server resumes that thread and the model is asked to go on,
in the working tree as the interrupted attempt left it. When that cannot be done (the
home or the thread is gone, the server refuses it, the step ran on ``mcp``, whose
threads live in the server process only), the step is redone from the start as before:
a new thread, a clean working tree, a note in the prompt. The step's ``restart``
record says which, and why.

What codex keeps there: ``config.toml``, SQLite state and logs, and the thread's
rollout, which holds the prompts, the model's answers, the commands and their output,
like the worktree and the manifest do. No credential: the API key reaches codex only
through its environment and is excluded from every command's (``agents._home``); a
canary test scans the kept home. It is not redacted (codex must read it back), so it
is private (0700) and removed when the step ends, succeeded or failed; only a process
that died mid-step leaves it behind, for its resume.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from orchestrator.exceptions import AgentServerError, AgentTimeoutError
from orchestrator.gitops import Worktree
from orchestrator.lifecycle import RunHandle
from orchestrator.runstore import Mutation
from schemas import (
    AgentBackend,
    AgentStep,
    ApprovalPolicyName,
    CodexServerConfig,
    RunManifest,
    SandboxMode,
    StepRestart,
    StepStatus,
    SubtaskRecord,
)

from ._home import DEFAULT_PARENT, temp_dir_above
from .backend import AgentSession
from .events import CodexEvent, EventCallback, SessionConfigured
from .turns import Turn

__all__ = [
    "CONTINUE_NOTE",
    "REDO_NOTE",
    "Attempt",
    "ResumableSession",
    "begin_attempt",
    "kept_codex_home",
    "kept_worktree",
    "step_codex_home",
]

logger = logging.getLogger(__name__)

HOMES_FOLDER = "codex-homes"
"""The run folder's subfolder holding the CODEX_HOME of each running app-server step."""

REDO_NOTE = (
    "Note: an earlier attempt of this step was interrupted and has been discarded; "
    "the working tree is clean again. Do the whole step from the start."
)
CONTINUE_NOTE = (
    "Note: your previous turn was interrupted before it finished (the orchestrator was "
    "restarted). The working tree is as you left it. Continue the task from where you "
    "stopped and give the final answer as asked."
)
"""The prompt of the turn that continues an interrupted thread (no call marker: the
thread's first prompt still says what the call is)."""


def step_codex_home(handle: RunHandle, step_id: str) -> Path:
    """Where step ``step_id`` of the run keeps its CODEX_HOME: ``<run>/codex-homes/<step>``.

    A run folder under the temp dir (tests) cannot hold one (codex's sandbox breaks
    there), so its steps keep theirs in ``~/.cache/codex-orchestrator/run-homes/<key of
    the run folder>/<step>``.
    """
    home = handle.path / HOMES_FOLDER / step_id
    if temp_dir_above(home) is None:
        return home
    key = hashlib.sha256(str(handle.path.absolute()).encode()).hexdigest()[:16]
    return DEFAULT_PARENT.expanduser() / "run-homes" / key / step_id


@contextmanager
def kept_codex_home(handle: RunHandle, step_id: str) -> Iterator[Path]:
    """The step's CODEX_HOME (made when missing, kept when there), removed when the block
    ends or fails; a process killed inside the block leaves it for the resume."""
    home = step_codex_home(handle, step_id)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        yield home
    except Exception:
        _remove(home)
        raise
    _remove(home)


def _remove(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    try:
        home.parent.rmdir()  # the run's homes folder, once its last step is done
    except OSError:
        pass


def kept_worktree(repo: Path, record: SubtaskRecord) -> Worktree | str:
    """The worktree an interrupted build left, to go on in; or why it cannot go on."""
    if record.codemods:
        return "the subtask's codemods run on a clean worktree"
    if record.worktree is None or record.branch is None:
        return "it recorded no worktree"
    if not (Path(record.worktree) / ".git").exists():
        return "its worktree is gone"
    return Worktree(repo, Path(record.worktree), record.branch)


@runtime_checkable
class ResumableSession(Protocol):
    """A session that can load a thread an earlier server began (``app-server``)."""

    async def resume_thread(self, thread_id: str) -> None: ...


@dataclass(frozen=True)
class Attempt:
    """How one attempt of a step makes its role call."""

    session: AgentSession
    """The session to call: on a continued thread, its first ``start`` is a reply."""
    on_event: EventCallback
    """The step's event callback, recording the thread id when the thread starts."""
    note: str
    """For the prompt's context: :data:`REDO_NOTE` when an earlier attempt was discarded."""
    restart: StepRestart | None = None

    @property
    def continued(self) -> bool:
        """The interrupted attempt's thread goes on (keep its working tree)."""
        return self.restart is not None and self.restart.continued

    def record(self, step_id: str, *, also: Mutation | None = None) -> Mutation:
        """The change to the step's record (and ``also``), for ``begin_step``'s update."""

        def mark(m: RunManifest) -> None:
            step = m.step(step_id)
            assert step is not None, step_id
            step.restart = self.restart
            if self.continued:
                assert self.restart is not None
                step.thread_id = self.restart.thread_id
            if also is not None:
                also(m)

        return mark


async def begin_attempt(
    handle: RunHandle,
    step_id: str,
    session: AgentSession,
    *,
    on_event: EventCallback | None = None,
    redo_because: str | None = None,
) -> Attempt:
    """Decide, before the step is recorded started, how its next attempt begins.

    A step left ``running`` (its process died mid-call) whose thread started on
    ``app-server`` is continued when ``session`` resumes that thread; otherwise it is
    redone (``redo_because``, when given, says why it must be).
    """
    previous = handle.read().step(step_id)
    recorder = _thread_recorder(handle, step_id, on_event)
    if previous is None or previous.attempt == 0:
        return Attempt(session=session, on_event=recorder, note="")
    restart = await _restart(previous, session, redo_because)
    if restart is not None:
        logger.info("%s of %s: %s", step_id, handle.label, restart.reason)
    if restart is not None and restart.continued:
        continuing = _Continuing(session, restart.thread_id)
        return Attempt(session=continuing, on_event=recorder, note="", restart=restart)
    return Attempt(session=session, on_event=recorder, note=REDO_NOTE, restart=restart)


async def _restart(
    previous: AgentStep, session: AgentSession, redo_because: str | None
) -> StepRestart | None:
    """None when the earlier attempt was not interrupted mid-call (it failed, or died
    before its thread started): a plain redo."""
    thread = previous.thread_id
    if previous.status is not StepStatus.RUNNING or thread is None:
        return None
    why_not = _not_resumable(previous.backend, session) or redo_because
    if why_not is not None:
        return StepRestart(thread_id=thread, continued=False, reason=f"redone: {why_not}")
    assert isinstance(session, ResumableSession)
    try:
        await session.resume_thread(thread)
    except (AgentServerError, AgentTimeoutError) as exc:
        reason = f"redone: its thread could not be resumed: {exc}"
        return StepRestart(thread_id=thread, continued=False, reason=reason[:2000])
    reason = f"continued: thread {thread} resumed in a new codex app-server"
    return StepRestart(thread_id=thread, continued=True, reason=reason)


def _not_resumable(backend: AgentBackend | None, session: AgentSession) -> str | None:
    if backend != "app-server" or session.backend != "app-server":
        return "codex mcp-server threads do not outlive their server"
    if not isinstance(session, ResumableSession):
        return "this session cannot resume threads"
    return None


def _thread_recorder(
    handle: RunHandle, step_id: str, on_event: EventCallback | None
) -> EventCallback:
    """``on_event``, after recording the step's thread id as soon as its thread starts."""

    async def record(event: CodexEvent) -> None:
        if isinstance(event, SessionConfigured) and event.thread_id:
            handle.update(
                _thread_started(step_id, event.thread_id),
                event="step.thread",
                step=step_id,
                thread_id=event.thread_id,
            )
        if on_event is not None:
            await on_event(event)

    return record


def _thread_started(step_id: str, thread_id: str) -> Mutation:
    def mark(m: RunManifest) -> None:
        step = m.step(step_id)
        if step is not None:
            step.thread_id = thread_id

    return mark


class _Continuing:
    """``session``, whose first ``start`` continues ``thread_id`` instead of a new thread.

    The roles call ``start`` with their prompt; the thread already holds that prompt and
    the interrupted turn, so the model is told to go on (:data:`CONTINUE_NOTE`).
    """

    def __init__(self, session: AgentSession, thread_id: str) -> None:
        self._session = session
        self._thread_id: str | None = thread_id

    @property
    def config(self) -> CodexServerConfig:
        return self._session.config

    @property
    def backend(self) -> AgentBackend:
        return self._session.backend

    @property
    def codex_version(self) -> str | None:
        return self._session.codex_version

    async def start(
        self,
        prompt: str,
        *,
        cwd: Path,
        sandbox: SandboxMode | None = None,
        approval_policy: ApprovalPolicyName | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call deadline, the public API
        on_event: EventCallback | None = None,
    ) -> Turn:
        thread, self._thread_id = self._thread_id, None
        if thread is not None:
            return await self._session.reply(
                thread, CONTINUE_NOTE, timeout=timeout, on_event=on_event
            )
        return await self._session.start(
            prompt,
            cwd=cwd,
            sandbox=sandbox,
            approval_policy=approval_policy,
            timeout=timeout,
            on_event=on_event,
        )

    async def reply(
        self,
        thread_id: str,
        prompt: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call deadline, the public API
        on_event: EventCallback | None = None,
    ) -> Turn:
        return await self._session.reply(thread_id, prompt, timeout=timeout, on_event=on_event)
