"""The MCP conversation with one codex server: ``codex`` / ``codex-reply`` calls, their
``codex/event`` notifications, approvals, deadlines and errors.

:class:`McpCodexClient` runs the SDK's ``ClientSession`` over any
:class:`~agents._streams.ServerStreams` (a spawned ``codex mcp-server`` or an in-memory
server), tapped in wire order (:mod:`agents._wire`):

- each ``tools/call`` carries ``_meta.codexOrchestratorCall``, which ties the SDK's
  request id to our call, and every ``codex/event`` with that ``requestId`` is the call's;
- an ``elicitation/create`` (codex asking to run a command or apply a patch) becomes an
  :class:`~agents.approvals.ApprovalRequest` built from its raw params, answered by the
  approver within the call deadline, and sent back as codex's ``decision`` (never
  ``abort``, which would hang the call);
- third-party errors become :class:`~orchestrator.exceptions.AgentServerError` or
  :class:`~orchestrator.exceptions.AgentTimeoutError` here, redacted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, Final

import anyio
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
from orchestrator.redaction import Redactor
from schemas import CodexServerConfig

from ._calls import CallState, decide, delivering
from ._streams import ServerStreams
from ._wire import TappedReader, TappedWriter
from .approvals import ApprovalAnswer, ApprovalRequest, Approver
from .events import EventCallback, parse_event
from .turns import TurnRecord

logger = logging.getLogger(__name__)

CALL_KEY: Final = "codexOrchestratorCall"
"""Our ``_meta`` key on each tools/call: ties the SDK-assigned request id to our call."""

CLIENT_INFO = Implementation(name="codex-orchestrator", version="0.1.0")
MAX_ERROR_TEXT = 2000
_EXIT_WAIT = 2.0


class _ApprovalResult(ElicitResult):
    """ElicitResult carrying codex's ``decision`` field (the SDK's model would drop it)."""

    model_config = ConfigDict(extra="allow")


class McpCodexClient:
    """Calls on one codex MCP server; several may run at once.

    Args:
        streams: the connection (its ``process``, if any, names exit codes in errors).
        config: deadlines (``startup_timeout_seconds``, ``call_timeout_seconds``).
        approver: answers codex's approval requests.
        redactor: applied to every text from the server that reaches an error.
        on_event: receives every event of every call.
    """

    def __init__(
        self,
        streams: ServerStreams,
        *,
        config: CodexServerConfig,
        approver: Approver,
        redactor: Redactor,
        on_event: EventCallback | None = None,
    ) -> None:
        self._streams = streams
        self._config = config
        self._approver = approver
        self._redactor = redactor
        self._on_event = on_event
        self._reader = TappedReader(streams.read_stream, self)
        self._session: ClientSession | None = None
        self._calls_by_key: dict[str, CallState] = {}
        self._calls_by_request: dict[int | str, CallState] = {}
        self._elicitations: dict[Any, Mapping[str, Any]] = {}
        self.server_version: str | None = None
        """The version the server reported at initialize (codex's own)."""

    async def open(self, stack: AsyncExitStack) -> None:
        """Start the MCP session on ``stack`` and initialize it.

        Raises:
            AgentTimeoutError: no answer within ``startup_timeout_seconds``.
            AgentServerError: the server answered with an error or went away.
        """
        session = ClientSession(
            self._reader,
            TappedWriter(self._streams.write_stream, self),
            elicitation_callback=self._on_elicitation,
            client_info=CLIENT_INFO,
        )
        self._session = await stack.enter_async_context(session)
        timeout = self._config.startup_timeout_seconds
        try:
            with anyio.fail_after(timeout):
                result = await session.initialize()
        except TimeoutError as exc:
            raise AgentTimeoutError(
                f"codex mcp-server did not answer initialize within {timeout:g}s"
            ) from exc
        except MCPError as exc:
            raise await self._server_error("initialize", exc) from exc
        self.server_version = result.server_info.version or None

    @property
    def connected(self) -> bool:
        """The server is still there: its side of the connection open, its process running."""
        process = self._streams.process
        if process is not None and process.returncode is not None:
            return False
        return self._session is not None and not self._reader.ended.is_set()

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        deadline: float | None,
        on_event: EventCallback | None,
        cwd: str | None,
    ) -> TurnRecord:
        """Call ``tool`` and collect its events until its result arrives.

        Raises:
            AgentServerError: the server is gone, went away, or answered with an error.
            AgentTimeoutError: no result within ``deadline`` (default: the config's).
        """
        session = self._require_session(tool)
        call = CallState(tool=tool, cwd=cwd)
        self._calls_by_key[call.key] = call
        started = time.monotonic()
        outcome: CallToolResult | AgentError
        try:
            async with delivering(call, [self._on_event, on_event]):
                # Caught here so it is not wrapped in the task group's ExceptionGroup.
                try:
                    outcome = await self._call_tool(session, call, arguments, deadline)
                except AgentError as exc:
                    outcome = exc
        finally:
            self._forget(call)
        if isinstance(outcome, AgentError):
            raise outcome
        return _record(call, outcome, duration_ms=int((time.monotonic() - started) * 1000))

    async def _call_tool(
        self,
        session: ClientSession,
        call: CallState,
        arguments: dict[str, Any],
        seconds: float | None,
    ) -> CallToolResult:
        deadline = seconds if seconds is not None else self._config.call_timeout_seconds
        meta: RequestParamsMeta = {CALL_KEY: call.key}  # type: ignore[typeddict-unknown-key]  # an open map (extra_items=Any) mypy does not model
        try:
            with anyio.fail_after(deadline):
                result = await session.call_tool(call.tool, arguments, meta=meta)
        except TimeoutError as exc:
            raise AgentTimeoutError(
                f"codex {call.tool} call did not finish within {deadline:g}s", tool=call.tool
            ) from exc
        except MCPError as exc:
            raise await self._server_error(call.tool, exc) from exc
        if result.is_error:
            raise AgentServerError(
                f"codex {call.tool} call failed: {self._error_text(result)}", tool=call.tool
            )
        return result

    def _require_session(self, tool: str) -> ClientSession:
        if self._session is None:
            raise AgentServerError("the codex session is not open", tool=tool)
        if not self.connected:
            raise AgentServerError(
                f"codex mcp-server is not running ({self._exit_detail()})", tool=tool
            )
        return self._session

    def _forget(self, call: CallState) -> None:
        self._calls_by_key.pop(call.key, None)
        if call.request_id is not None:
            self._calls_by_request.pop(call.request_id, None)

    # -- errors ----------------------------------------------------------------------

    async def _server_error(self, tool: str, exc: MCPError) -> AgentServerError:
        if exc.code != CONNECTION_CLOSED:
            message = self._redactor.redact(exc.error.message)[:MAX_ERROR_TEXT]
            return AgentServerError(f"codex {tool} failed: MCP error {exc.code}: {message}")
        process = self._streams.process
        if process is not None:
            await process.wait_exit(_EXIT_WAIT)
        message = f"codex mcp-server died during {tool} ({self._exit_detail()})"
        if stderr := self._stderr_last_line():
            message += f"; last stderr line: {stderr}"
        return AgentServerError(message, tool=tool)

    def _exit_detail(self) -> str:
        process = self._streams.process
        code = process.returncode if process is not None else None
        return f"exit code {code}" if code is not None else "its connection closed"

    def _stderr_last_line(self) -> str:
        process = self._streams.process
        lines = process.stderr_tail().splitlines() if process is not None else []
        return self._redactor.redact(lines[-1])[:300] if lines else ""

    def _error_text(self, result: CallToolResult) -> str:
        text = _result_text(result) or "(no message)"
        return self._redactor.redact(text)[:MAX_ERROR_TEXT]

    # -- the wire tap (synchronous, wire order) ----------------------------------------

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

    def _call_of(self, request_id: Any) -> CallState | None:
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
        deadline = self._config.call_timeout_seconds
        call = self._call_of(request.request_id)
        if call is None:
            return _elicit_result(await decide(self._approver, request, deadline=deadline))
        return _elicit_result(await call.decide(self._approver, request, deadline=deadline))


def _record(call: CallState, result: CallToolResult, *, duration_ms: int) -> TurnRecord:
    structured = result.structured_content or {}
    thread_id = structured.get("threadId")
    content = structured.get("content")
    return TurnRecord(
        thread_id=str(thread_id) if thread_id else None,
        text=content if isinstance(content, str) else (_result_text(result) or None),
        events=list(call.events),
        approvals=list(call.approvals),
        cwd=call.cwd,
        duration_ms=duration_ms,
        request_id=call.request_id,
    )


def _elicit_result(answer: ApprovalAnswer) -> ElicitResult:
    decision: Any = (
        "approved" if answer.approved else {"denied": {"rejection": answer.reason or "denied"}}
    )
    return _ApprovalResult(action="accept", decision=decision)


def _result_text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))
