"""The ``app-server`` backend: one ``codex app-server`` and the turns run through it.

:class:`AppServerSession` is the :class:`~agents.backend.AgentSession` of the current
codex (``openai-codex-cli-bin``, found through its package, never on PATH). It puts
together:

- the **process** (:mod:`agents._process`, like the MCP backend's): its own process
  group, a parent-death signal, a private CODEX_HOME, only the credentials and the
  few variables :func:`~agents._launch.server_environment` passes;
- the **protocol** (:mod:`agents._jsonrpc`): JSON-RPC 2.0 over its stdio, messages
  built and read with the SDK's generated models (:mod:`agents._appserver_events`);
- the **turns** (:mod:`agents.turns`): the same :class:`~agents.turns.Turn` as the MCP
  backend's, from the same event types.

A ``start`` is ``thread/start`` then ``turn/start``; a ``reply`` is ``turn/start`` on the
thread (after ``thread/resume`` when the thread is not one of this server's: threads
live on in CODEX_HOME, so a new server continues one an earlier server began).
Approval requests go to the approver; ``decline`` carries no text to the model, so a
person's reason is kept in the turn's approvals and commands only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
from openai_codex.generated import v2_all as wire
from pydantic import BaseModel

from orchestrator.exceptions import AgentError, AgentServerError, AgentTimeoutError
from orchestrator.redaction import Redactor
from schemas import ApprovalPolicyName, CodexServerConfig, SandboxMode

from ._appserver_events import QUIET_METHODS, EventReader, approval_request
from ._calls import CallState, decide, delivering
from ._home import private_codex_home
from ._jsonrpc import ConnectionClosedError, JsonObject, JsonRpcConnection, RpcError
from ._launch import resolve_app_server_command, server_environment, with_bundled_tools
from ._owned import OwnedSession
from ._process import CodexProcess, open_codex_process
from .approvals import Approver
from .events import EventCallback, SessionConfigured
from .turns import Turn, TurnRecord

__all__ = ["AppServerSession"]

logger = logging.getLogger(__name__)

BACKEND: Final = "app-server"
CLIENT_INFO = wire.ClientInfo(name="codex-orchestrator", version="0.1.0")
MAX_ERROR_TEXT = 2000
INTERRUPT_GRACE = 2.0
_EXIT_WAIT = 2.0


@dataclass(eq=False)
class _RunningTurn:
    """One turn in flight: its call's events and approvals, and how it ended."""

    call: CallState
    turn_id: str | None = None
    completed: Mapping[str, Any] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


def _dump(model: BaseModel) -> JsonObject:
    dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert isinstance(dumped, dict)
    return dumped


class AppServerSession(OwnedSession):
    """An async context manager owning one ``codex app-server`` process.

    Args:
        config: server settings (provider, model, sandbox, approval policy, timeouts).
        env: the credentials for the server's environment, e.g. ``{"OPENAI_API_KEY":
            ...}`` from the broker; nothing else of ours reaches codex.
        approver: answers codex's command and file-change approvals; default: deny all.
        codex_home: the CODEX_HOME to use (never under /tmp; kept when it existed, so
            a later session can resume its threads); default: a fresh private folder,
            removed on exit.
        on_event: receives every event of every turn.
        redactor: applied to server texts in errors; the value of ``provider.env_key``
            in ``env`` is registered with it. Default: the process-wide one.
    """

    backend: Final = BACKEND

    def __init__(
        self,
        config: CodexServerConfig,
        *,
        env: Mapping[str, str] | None = None,
        approver: Approver | None = None,
        codex_home: Path | None = None,
        on_event: EventCallback | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        super().__init__(
            config,
            env=env,
            approver=approver,
            codex_home=codex_home,
            on_event=on_event,
            redactor=redactor,
        )
        self._process: CodexProcess | None = None
        self._home: Path | None = None
        self._rpc: JsonRpcConnection | None = None
        self._reader = EventReader()
        self._running: dict[str, _RunningTurn] = {}
        self._threads: set[str] = set()
        self._resumed_cwd: dict[str, str] = {}
        self.codex_version: str | None = None
        """The codex version the server reported when it started."""

    @property
    def pid(self) -> int | None:
        """The server's process id (kept after it stopped)."""
        return self._process.pid if self._process is not None else None

    @property
    def codex_home(self) -> Path | None:
        return self._home

    @property
    def alive(self) -> bool:
        """Open, and the server still there."""
        return (
            self._stack is not None
            and self._rpc is not None
            and not self._rpc.ended.is_set()
            and self._process is not None
            and self._process.returncode is None
        )

    async def _open(self, stack: AsyncExitStack) -> None:
        config = self.config
        command = [resolve_app_server_command(config), "app-server", "--strict-config"]
        home = stack.enter_context(private_codex_home(config, path=self._launch.codex_home))
        self._home = home
        env = with_bundled_tools(server_environment(home, self._launch.env))
        try:
            self._process = await stack.enter_async_context(
                open_codex_process(command, env=env, cwd=home)
            )
        except OSError as exc:
            raise AgentServerError(
                f"could not start codex app-server ({command[0]}): {exc.strerror}", tool="codex"
            ) from exc
        rpc = JsonRpcConnection(
            self._process,
            on_notification=self._on_notification,
            on_request=self._on_request,
            on_line=self._on_line,
            on_close=self._on_close,
        )
        self._rpc = await stack.enter_async_context(rpc.running())
        await self._initialize()

    async def _initialize(self) -> None:
        params = wire.InitializeParams(
            client_info=CLIENT_INFO,
            capabilities=wire.InitializeCapabilities(
                opt_out_notification_methods=list(QUIET_METHODS),
                experimental_api=True,  # for the raw response items: see _open_thread
            ),
        )
        timeout = self.config.startup_timeout_seconds
        try:
            with anyio.fail_after(timeout):
                result = await self._request("initialize", _dump(params), tool="initialize")
        except TimeoutError as exc:
            raise AgentTimeoutError(
                f"codex app-server did not answer initialize within {timeout:g}s"
            ) from exc
        self.codex_version = _version_of(str(result.get("userAgent", "")))
        assert self._rpc is not None
        await self._rpc.notify("initialized")

    # -- calls -----------------------------------------------------------------------

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
        """Start a new thread in ``cwd`` and run ``prompt`` on it.

        Raises:
            AgentServerError: the server is not running, died, or the turn failed.
            AgentTimeoutError: the turn took longer than ``timeout`` (default: the config's).
        """
        folder = _absolute(cwd)
        thread = wire.ThreadStartParams(
            cwd=folder,
            sandbox=wire.SandboxMode(sandbox or self.config.sandbox),
            approval_policy=_policy(approval_policy or self.config.approval_policy),
            # The default reviewer asks the model to review its own command.
            approvals_reviewer=wire.ApprovalsReviewer.user,
        )
        call = CallState(tool="codex", cwd=folder)
        return await self._call(call, prompt, thread=thread, deadline=timeout, on_event=on_event)

    async def reply(
        self,
        thread_id: str,
        prompt: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call deadline, the public API
        on_event: EventCallback | None = None,
    ) -> Turn:
        """Run ``prompt`` on thread ``thread_id`` (resumed first if this server has not
        seen it: it may have been started by an earlier server on the same CODEX_HOME).

        Raises:
            AgentServerError: the server is not running, died, the thread is unknown,
                or the turn failed.
            AgentTimeoutError: the turn took longer than ``timeout`` (default: the config's).
        """
        cwd = self._turns.cwd_of(thread_id) or self._resumed_cwd.get(thread_id)
        call = CallState(tool="codex-reply", cwd=cwd)
        return await self._call(call, prompt, thread=thread_id, deadline=timeout, on_event=on_event)

    async def resume_thread(self, thread_id: str) -> None:
        """Load thread ``thread_id``, begun by an earlier server on this CODEX_HOME, so
        that a ``reply`` continues it.

        Raises:
            AgentServerError: the server cannot resume it (e.g. "no rollout found": its
                CODEX_HOME no longer holds it), is not running, or died.
            AgentTimeoutError: no answer within ``startup_timeout_seconds``.
        """
        call = CallState(tool="thread/resume", cwd=None)
        seconds = self.config.startup_timeout_seconds
        try:
            with anyio.fail_after(seconds):
                await self._resume(call, thread_id)
        except TimeoutError as exc:
            message = f"codex app-server did not resume thread {thread_id} within {seconds:g}s"
            raise AgentTimeoutError(message, tool=call.tool) from exc
        self._resumed_cwd[thread_id] = call.cwd or ""

    async def _call(
        self,
        call: CallState,
        prompt: str,
        *,
        thread: wire.ThreadStartParams | str,
        deadline: float | None,
        on_event: EventCallback | None,
    ) -> Turn:
        self._require_open(call.tool)
        running = _RunningTurn(call=call)
        seconds = deadline if deadline is not None else self.config.call_timeout_seconds
        started = time.monotonic()
        outcome: TurnRecord | AgentError
        async with delivering(call, [self._on_event, on_event]):
            # Caught here so it is not wrapped in the task group's ExceptionGroup.
            try:
                outcome = await self._run(running, prompt, thread, seconds, started)
            except AgentError as exc:
                outcome = exc
        if isinstance(outcome, AgentError):
            raise outcome
        return self._turns.build(outcome)

    async def _run(
        self,
        running: _RunningTurn,
        prompt: str,
        thread: wire.ThreadStartParams | str,
        seconds: float,
        started: float,
    ) -> TurnRecord:
        call = running.call
        thread_id: str | None = None
        try:
            with anyio.fail_after(seconds):
                thread_id = await self._open_thread(call, thread)
                self._running[thread_id] = running
                await self._start_turn(running, thread_id, prompt)
                await running.done.wait()
        except TimeoutError as exc:
            if thread_id is not None:
                await self._interrupt(thread_id, running.turn_id)
            raise AgentTimeoutError(
                f"codex {call.tool} call did not finish within {seconds:g}s", tool=call.tool
            ) from exc
        except anyio.get_cancelled_exc_class():
            # A caller that stops waiting (a budget reached mid-turn) stops the turn too,
            # as mcp-server does on the SDK's notifications/cancelled.
            if thread_id is not None:
                await self._interrupt(thread_id, running.turn_id)
            raise
        finally:
            if thread_id is not None and self._running.get(thread_id) is running:
                del self._running[thread_id]
        duration_ms = int((time.monotonic() - started) * 1000)
        return await self._record(running, thread_id, duration_ms)

    async def _open_thread(self, call: CallState, thread: wire.ThreadStartParams | str) -> str:
        if isinstance(thread, str):
            if thread not in self._threads:
                await self._resume(call, thread)
            return thread
        # Raw response items name every command, also sandbox-refused ones with no
        # commandExecution item (agents._tool_calls); experimental, not in the SDK model.
        body = {**_dump(thread), "experimentalRawEvents": True}
        result = await self._request("thread/start", body, tool=call.tool)
        response = wire.ThreadStartResponse.model_validate(result)
        thread_id = response.thread.id
        self._threads.add(thread_id)
        call.add(
            SessionConfigured(
                type=SessionConfigured.TYPE,
                thread_id=thread_id,
                model=response.model,
                cwd=response.cwd.root,
            )
        )
        return thread_id

    async def _resume(self, call: CallState, thread_id: str) -> None:
        params = wire.ThreadResumeParams(
            thread_id=thread_id,
            exclude_turns=True,
            approvals_reviewer=wire.ApprovalsReviewer.user,
        )
        result = await self._request("thread/resume", _dump(params), tool=call.tool)
        cwd = result.get("cwd")
        if call.cwd is None and isinstance(cwd, str):
            call.cwd = cwd
        self._threads.add(thread_id)

    async def _start_turn(self, running: _RunningTurn, thread_id: str, prompt: str) -> None:
        assert self._rpc is not None
        request_id = self._rpc.next_id()
        running.call.request_id = request_id
        params = wire.TurnStartParams(
            thread_id=thread_id,
            input=[wire.UserInput(root=wire.TextUserInput(type="text", text=prompt))],
        )
        result = await self._request(
            "turn/start", _dump(params), tool=running.call.tool, request_id=request_id
        )
        turn = result.get("turn")
        if isinstance(turn, Mapping) and isinstance(turn.get("id"), str):
            running.turn_id = turn["id"]

    async def _interrupt(self, thread_id: str, turn_id: str | None) -> None:
        """Ask the server to stop a turn we no longer wait for (best effort, bounded)."""
        if turn_id is None or self._rpc is None:
            return
        params = wire.TurnInterruptParams(thread_id=thread_id, turn_id=turn_id)
        with anyio.CancelScope(shield=True), anyio.move_on_after(INTERRUPT_GRACE):
            try:
                await self._rpc.request("turn/interrupt", _dump(params))
            except (RpcError, ConnectionClosedError) as exc:
                logger.debug("interrupting turn %s failed: %s", turn_id, exc)

    async def _record(
        self, running: _RunningTurn, thread_id: str | None, duration_ms: int
    ) -> TurnRecord:
        call = running.call
        if running.completed is None:
            raise await self._died(call.tool)
        completed = wire.TurnCompletedNotification.model_validate(running.completed)
        turn = completed.turn
        if turn.status is not wire.TurnStatus.completed:
            detail = turn.error.message if turn.error is not None else turn.status.value
            text = self._redactor.redact(detail)[:MAX_ERROR_TEXT]
            raise AgentServerError(f"codex {call.tool} call failed: {text}", tool=call.tool)
        return TurnRecord(
            thread_id=thread_id,
            text=None,
            events=list(call.events),
            approvals=list(call.approvals),
            cwd=call.cwd,
            duration_ms=duration_ms,
            request_id=call.request_id,
        )

    async def _request(
        self, method: str, params: JsonObject, *, tool: str, request_id: int | None = None
    ) -> JsonObject:
        rpc = self._require_open(tool)
        try:
            return await rpc.request(method, params, request_id=request_id)
        except RpcError as exc:
            message = self._redactor.redact(exc.message)[:MAX_ERROR_TEXT]
            raise AgentServerError(
                f"codex {method} failed during {tool}: JSON-RPC error {exc.code}: {message}",
                tool=tool,
            ) from exc
        except ConnectionClosedError as exc:
            raise await self._died(tool) from exc

    def _require_open(self, tool: str) -> JsonRpcConnection:
        if self._rpc is None:
            raise AgentServerError("the codex session is not open", tool=tool)
        if self._rpc.ended.is_set():
            raise AgentServerError(
                f"codex app-server is not running ({self._exit_detail()})", tool=tool
            )
        return self._rpc

    # -- errors ----------------------------------------------------------------------

    async def _died(self, tool: str) -> AgentServerError:
        if self._process is not None:
            await self._process.wait_exit(_EXIT_WAIT)
        message = f"codex app-server died during {tool} ({self._exit_detail()})"
        if stderr := self._stderr_last_line():
            message += f"; last stderr line: {stderr}"
        return AgentServerError(message, tool=tool)

    def _exit_detail(self) -> str:
        code = self._process.returncode if self._process is not None else None
        return f"exit code {code}" if code is not None else "its connection closed"

    def _stderr_last_line(self) -> str:
        tail = self._process.stderr_tail() if self._process is not None else ""
        lines = [line for line in tail.splitlines() if line.strip()]
        return self._redactor.redact(lines[-1])[:300] if lines else ""

    # -- the wire (synchronous, wire order) ---------------------------------------------

    def _on_line(self, message: Mapping[str, Any]) -> None:
        if message.get("method") == "item/started" and self._process is not None:
            params = message.get("params")
            item = params.get("item") if isinstance(params, Mapping) else None
            if isinstance(item, Mapping) and item.get("type") == "commandExecution":
                # Recorded soon after codex spawns it, so it is swept if codex dies.
                self._process.scan_soon()

    def _on_notification(self, method: str, params: Mapping[str, Any]) -> None:
        running = self._running.get(str(params.get("threadId", "")))
        if running is None:
            return
        event = self._reader.event(method, params, request_id=running.call.request_id)
        if event is not None:
            running.call.add(event)
        if method == "turn/completed" and self._ends(running, params):
            running.completed = params
            running.done.set()

    @staticmethod
    def _ends(running: _RunningTurn, params: Mapping[str, Any]) -> bool:
        turn = params.get("turn")
        turn_id = turn.get("id") if isinstance(turn, Mapping) else None
        return running.turn_id is None or turn_id == running.turn_id

    def _on_close(self) -> None:
        for running in self._running.values():
            running.done.set()  # with nothing completed: the server died

    async def _on_request(self, method: str, params: Mapping[str, Any]) -> JsonObject:
        running = self._running.get(str(params.get("threadId", "")))
        request = approval_request(
            method,
            params,
            changes=self._reader.changes_of,
            request_id=running.call.request_id if running is not None else None,
        )
        deadline = self.config.call_timeout_seconds
        if running is None:
            answer = await decide(self._approver, request, deadline=deadline)
        else:
            answer = await running.call.decide(self._approver, request, deadline=deadline)
        # Never "cancel": it would end the turn; the model goes on after a decline.
        return {"decision": "accept" if answer.approved else "decline"}


def _absolute(path: Path) -> str:
    return str(Path(path).absolute())


def _policy(name: ApprovalPolicyName) -> wire.AskForApproval:
    return wire.AskForApproval(root=wire.AskForApprovalValue(name))


def _version_of(user_agent: str) -> str | None:
    """``0.163.0`` of ``codex-orchestrator/0.163.0 (Debian ...)``."""
    first = user_agent.split(" ", 1)[0]
    _, _, version = first.partition("/")
    return version or None
