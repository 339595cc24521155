"""An in-memory codex MCP server for fast tests: the SDK's MCP server playing codex.

    fake = FakeCodex(answer)          # answer: async (FakeCall) -> str, the final message
    async with CodexSession(config, streams=fake.streams) as session:
        turn = await session.start(prompt, cwd=repo)
    assert [c.tool for c in fake.calls] == ["codex"]

It speaks what ``codex mcp-server`` 0.147 speaks (``docs/agents.md``,
``notes/codex-mcp.md``): the tools ``codex`` and ``codex-reply``, each returning
``{threadId, content}`` as structured content; ``codex/event`` notifications whose
``_meta.requestId`` is the tools/call's id; approvals as ``elicitation/create`` requests
with codex's flat ``codex_*`` params, answered with a ``decision``. Threads and their
cumulative token counts live in the fake, like in a codex process. No process, no model.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.memory import create_client_server_memory_streams
from mcp.shared.message import ServerMessageMetadata
from pydantic import BaseModel, ConfigDict

from agents import CodexLaunch, ServerStreams
from agents.markers import find_marker

TOOLS = [
    types.Tool(
        name="codex",
        input_schema={
            "type": "object",
            "properties": {
                "prompt": {"type": "string"},
                "cwd": {"type": "string"},
                "sandbox": {"type": "string"},
                "approval-policy": {"type": "string"},
            },
            "required": ["prompt"],
        },
    ),
    types.Tool(
        name="codex-reply",
        input_schema={
            "type": "object",
            "properties": {"prompt": {"type": "string"}, "threadId": {"type": "string"}},
            "required": ["prompt", "threadId"],
        },
    ),
]


class FakeError(Exception):
    """Raised by an answer: the call returns ``isError`` with this text, as codex does."""


class _Raw(BaseModel):
    """A notification or request the SDK's typed unions do not know (codex's own)."""

    model_config = ConfigDict(extra="allow")

    method: str
    params: dict[str, Any]


class _Decision(types.ElicitResult):
    model_config = ConfigDict(extra="allow")


@dataclass
class FakeCall:
    """One ``codex`` / ``codex-reply`` call the fake received, and what it can send back."""

    tool: str
    arguments: dict[str, Any]
    thread_id: str
    request_id: types.RequestId
    cwd: Path | None
    _context: ServerRequestContext[Any, Any] = field(repr=False)
    _codex: FakeCodex = field(repr=False)
    decisions: list[Any] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        return str(self.arguments.get("prompt", ""))

    @property
    def marker(self) -> dict[str, str]:
        return find_marker(self.prompt) or {}

    async def event(self, kind: str, **fields: Any) -> None:
        """Send one ``codex/event`` of this call."""
        params = {
            "_meta": {"requestId": self.request_id, "threadId": self.thread_id},
            "id": "0",
            "msg": {"type": kind, **fields},
        }
        await self._context.session.send_notification(
            _Raw(method="codex/event", params=params),  # type: ignore[arg-type]
            related_request_id=self.request_id,
        )

    async def run(self, command: str, *, exit_code: int = 0, output: str = "") -> None:
        """Report a shell command run in the thread's folder, with its exit code."""
        call_id = f"exec-{next(self._codex.ids)}"
        argv = ["/bin/bash", "-lc", command]
        where = str(self.cwd) if self.cwd else None
        await self.event("exec_command_begin", call_id=call_id, command=argv, cwd=where)
        await self.event(
            "exec_command_end",
            call_id=call_id,
            command=argv,
            cwd=where,
            exit_code=exit_code,
            status="completed" if exit_code == 0 else "failed",
            duration={"secs": 0, "nanos": 5_000_000},
            aggregated_output=output,
        )

    async def patch(self, files: dict[str, str]) -> None:
        """Write ``files`` (relative to the thread's folder) and report the patch."""
        assert self.cwd is not None, "a patch needs the thread's folder"
        changes: dict[str, Any] = {}
        for name, text in files.items():
            path = self.cwd / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changes[str(path)] = {"type": "add", "content": text}
        call_id = f"patch-{next(self._codex.ids)}"
        await self.event("patch_apply_begin", call_id=call_id, changes=changes)
        await self.event("patch_apply_end", call_id=call_id, success=True, changes=changes)

    async def tokens(self, *, input_tokens: int, output_tokens: int) -> None:
        """Count one model request's usage; codex reports totals over the thread."""
        last = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        last["total_tokens"] = input_tokens + output_tokens
        total = self._codex.thread_tokens.setdefault(self.thread_id, dict.fromkeys(last, 0))
        for name, value in last.items():
            total[name] += value
        info = {"total_token_usage": dict(total), "last_token_usage": last}
        await self.event("token_count", info=info)

    async def ask(self, command: list[str], *, cwd: Path | None = None) -> Any:
        """Ask to run ``command`` outside the sandbox; returns the client's ``decision``."""
        params = {
            "message": f"Allow Codex to run `{' '.join(command)}`?",
            "requestedSchema": {"type": "object", "properties": {}},
            "threadId": self.thread_id,
            "codex_elicitation": "exec-approval",
            "codex_mcp_tool_call_id": str(self.request_id),
            "codex_event_id": "0",
            "codex_call_id": f"exec-{next(self._codex.ids)}",
            "codex_command": command,
            "codex_cwd": str(cwd or self.cwd),
        }
        result = await self._context.session.send_request(
            _Raw(method="elicitation/create", params=params),  # type: ignore[arg-type]
            _Decision,
            metadata=ServerMessageMetadata(related_request_id=self.request_id),
        )
        decision = (result.model_extra or {}).get("decision")
        self.decisions.append(decision)
        return decision


Answer = Callable[[FakeCall], Awaitable[str]]


class FakeCodex:
    """An in-memory codex: give :attr:`streams` to ``CodexSession(streams=...)``.

    Args:
        answer: plays the agent for each call: sends events, asks approvals, and
            returns the final message (raise :class:`FakeError` for an ``isError``).
    """

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.calls: list[FakeCall] = []
        self.launches: list[CodexLaunch] = []
        self.thread_tokens: dict[str, dict[str, int]] = {}
        self.ids = itertools.count(1)
        self._thread_cwd: dict[str, Path | None] = {}
        self._hang_ups: list[Callable[[], Awaitable[None]]] = []
        self.server: Server[Any] = Server(
            "codex-mcp-server", on_call_tool=self._on_call_tool, on_list_tools=self._on_list_tools
        )

    def calls_of(self, role: str) -> list[FakeCall]:
        """The calls whose prompt carries a marker with ``role``."""
        return [call for call in self.calls if call.marker.get("role") == role]

    @asynccontextmanager
    async def streams(self, launch: CodexLaunch) -> AsyncIterator[ServerStreams]:
        """The stream factory: one in-memory connection to this fake per session."""
        self.launches.append(launch)
        async with create_client_server_memory_streams() as (client, server):
            async with anyio.create_task_group() as tg:
                options = self.server.create_initialization_options()
                tg.start_soon(partial(self.server.run, server[0], server[1], options))

                async def hang_up() -> None:
                    await server[1].aclose()  # the client reads the end of the stream

                self._hang_ups.append(hang_up)
                try:
                    yield ServerStreams(read_stream=client[0], write_stream=client[1])
                finally:
                    tg.cancel_scope.cancel()

    async def hang_up(self) -> None:
        """End every connection from the server's side, as a dying codex would."""
        for hang_up in self._hang_ups:
            await hang_up()

    async def _on_list_tools(
        self, context: ServerRequestContext[Any, Any], params: Any
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def _on_call_tool(
        self, context: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        call = self._call(context, params)
        self.calls.append(call)
        try:
            text = await self._answer(call)
        except FakeError as error:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(error))], is_error=True
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content={"threadId": call.thread_id, "content": text},
        )

    def _call(
        self, context: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> FakeCall:
        arguments = dict(params.arguments or {})
        if params.name == "codex-reply":
            thread_id = str(arguments["threadId"])
        else:
            thread_id = f"thread-{next(self.ids)}"
            cwd = arguments.get("cwd")
            self._thread_cwd[thread_id] = Path(cwd) if isinstance(cwd, str) else None
        assert context.request_id is not None
        return FakeCall(
            tool=params.name,
            arguments=arguments,
            thread_id=thread_id,
            request_id=context.request_id,
            cwd=self._thread_cwd.get(thread_id),
            _context=context,
            _codex=self,
        )
