"""Where a session's MCP streams come from: an injectable factory, and the default one that
spawns ``codex mcp-server``.

A :class:`StreamFactory` is called with a :class:`~agents._launch.CodexLaunch` and returns
an async context manager yielding :class:`ServerStreams`: the read/write streams of
:class:`~mcp.shared.message.SessionMessage` that the SDK's ``ClientSession`` takes (as
the SDK's own transports and openai-agents' ``create_streams()`` do), plus the process
behind them when there is one. Tests pass a factory over an in-memory MCP server.

:func:`spawn_mcp_server`, the default, is like the SDK's ``stdio_client`` (one JSON-RPC
message per line) over :mod:`agents._process`, with a private CODEX_HOME and only the
environment :func:`~agents._launch.server_environment` allows.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

# The SDK's own transport protocol (mcp.client.Transport) is built on these two.
from mcp.client._transport import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter

from orchestrator.exceptions import AgentServerError

from ._home import private_codex_home
from ._launch import CodexLaunch, resolve_codex_command, server_environment
from ._process import CodexProcess, open_codex_process

logger = logging.getLogger(__name__)

EVENT_METHOD: Final = "codex/event"
_SPAWNING_EVENTS = frozenset({"exec_command_begin", "patch_apply_begin"})
_STREAM_ERRORS = (anyio.ClosedResourceError, anyio.BrokenResourceError)
_MessageStreams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]
]


class ServerProcess(Protocol):
    """The operating-system process behind a connection, for supervision and error texts."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def stderr_tail(self) -> str:
        """The last lines it wrote to stderr."""
        ...

    async def wait_exit(self, grace: float) -> int | None:
        """Its exit code once it ended within ``grace`` seconds, else None."""
        ...


@dataclass(frozen=True, kw_only=True)
class ServerStreams:
    """A connection to one codex MCP server, as the SDK's ``ClientSession`` takes it.

    Attributes:
        read_stream: messages from the server (an ``Exception`` for a line that is not
            a JSON-RPC message).
        write_stream: messages to the server.
        process: the server process, when there is one (None for an in-memory server).
        codex_home: its CODEX_HOME, when there is one.
    """

    read_stream: ReadStream[SessionMessage | Exception]
    write_stream: WriteStream[SessionMessage]
    process: ServerProcess | None = None
    codex_home: Path | None = None


class StreamFactory(Protocol):
    """Connects to a codex MCP server for ``launch``; the connection ends with the context."""

    def __call__(self, launch: CodexLaunch, /) -> AbstractAsyncContextManager[ServerStreams]: ...


@asynccontextmanager
async def spawn_mcp_server(launch: CodexLaunch) -> AsyncIterator[ServerStreams]:
    """The default stream factory: a ``codex mcp-server`` process of its own over stdio.

    Raises:
        AgentServerError: no codex executable, or it could not be started.
        InvalidInputError: ``launch.codex_home`` lies under the system temp directory.
    """
    command = [resolve_codex_command(launch.config), "mcp-server"]
    with private_codex_home(launch.config, path=launch.codex_home) as home:
        env = server_environment(home, launch.env)
        async with AsyncExitStack() as stack:
            try:
                process = await stack.enter_async_context(
                    open_codex_process(command, env=env, cwd=home)
                )
            except OSError as exc:
                raise AgentServerError(
                    f"could not start codex mcp-server ({command[0]}): {exc.strerror}",
                    tool="codex",
                ) from exc
            read, write = await stack.enter_async_context(_framed(process))
            yield ServerStreams(
                read_stream=read, write_stream=write, process=process, codex_home=home
            )


@asynccontextmanager
async def _framed(
    process: CodexProcess,
) -> AsyncIterator[_MessageStreams]:
    """The process's stdio as MCP message streams (one JSON-RPC message per line)."""
    read_sink, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](math.inf)
    write_stream, write_source = anyio.create_memory_object_stream[SessionMessage](math.inf)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_read_messages, process, read_sink)
        tg.start_soon(_write_messages, process, write_source, read_sink)
        try:
            yield read_stream, write_stream
        finally:
            tg.cancel_scope.cancel()
            for stream in (read_sink, read_stream, write_stream, write_source):
                stream.close()


async def _read_messages(
    process: CodexProcess, sink: MemoryObjectSendStream[SessionMessage | Exception]
) -> None:
    with suppress(*_STREAM_ERRORS):
        async with sink:  # closed at the end of stdout: the SDK sees the connection end
            async for line in process.lines:
                message = _parse(line, process)
                if message is not None:
                    await sink.send(message)


def _parse(line: bytes, process: CodexProcess) -> SessionMessage | Exception | None:
    try:
        data = json.loads(line)
    except ValueError as exc:
        logger.warning("codex wrote a line that is not JSON; ignored")
        return exc
    if not isinstance(data, dict):
        return None
    if _starts_a_process(data):
        # Recorded before anyone hears of the command, so it is swept if codex dies now.
        process.record_descendants()
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_python(data, by_name=False))
    except ValueError as exc:
        return exc


def _starts_a_process(data: Mapping[str, Any]) -> bool:
    if data.get("method") != EVENT_METHOD:
        return False
    params = data.get("params")
    msg = params.get("msg") if isinstance(params, dict) else None
    return isinstance(msg, dict) and msg.get("type") in _SPAWNING_EVENTS


async def _write_messages(
    process: CodexProcess,
    source: MemoryObjectReceiveStream[SessionMessage],
    read_sink: MemoryObjectSendStream[SessionMessage | Exception],
) -> None:
    with suppress(*_STREAM_ERRORS):
        async with source:
            async for session_message in source:
                message = session_message.message
                data = message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                if not await process.send(data.encode("utf-8")):
                    # The server is gone: end the read side so waiting requests fail at once.
                    read_sink.close()
                    return
