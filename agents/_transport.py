"""The stdio transport to ``codex mcp-server``: spawn, bridge, tap, and stop without orphans.

Like the SDK's ``stdio_client`` (newline-delimited JSON-RPC over the child's pipes), plus
what a codex session needs and that transport does not give:

- the process itself (pid, exit code, the tail of its stderr) for clear errors and
  PID-checked clean-up;
- a tap that sees every message in wire order *before* the SDK does: ``codex/event``
  notifications are routed to their call right here (so a call's events are all recorded
  before its result is), and the raw params of server requests are kept (the SDK's typed
  elicitation callback drops codex's ``codex_*`` fields);
- shutdown that closes stdin, waits, then SIGTERM/SIGKILLs the process group and any
  descendant still alive, all bounded and shielded from cancellation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, jsonrpc_message_adapter

from orchestrator.processes import descendants, is_same_process

logger = logging.getLogger(__name__)

EVENT_METHOD = "codex/event"
STDIN_CLOSE_GRACE = 2.0
TERM_GRACE = 2.0
KILL_GRACE = 2.0
_POLL = 0.01
_STDERR_TAIL_BYTES = 8192
_SPAWNING_EVENTS = frozenset({"exec_command_begin", "patch_apply_begin"})
DESCENDANT_SCAN_INTERVAL = 0.5
"""How often the process tree under the server is recorded, to sweep it if the server dies."""


class Tap(Protocol):
    """Synchronous observers on the wire, called in order from the transport's tasks."""

    def on_event(self, params: Mapping[str, Any]) -> None:
        """A ``codex/event`` notification (not forwarded to the SDK)."""

    def on_server_request(self, request_id: Any, method: str, params: Mapping[str, Any]) -> None:
        """A request from the server, seen before the SDK handles it."""

    def on_tool_call(self, request_id: Any, params: Mapping[str, Any]) -> None:
        """A ``tools/call`` request of ours, seen before it is written."""


@dataclass
class CodexProcess:
    """A running ``codex mcp-server`` and the SDK-facing ends of its stdio."""

    process: Process
    tap: Tap
    read_stream: MemoryObjectReceiveStream[SessionMessage | Exception]
    write_stream: MemoryObjectSendStream[SessionMessage]
    _read_writer: MemoryObjectSendStream[SessionMessage | Exception]
    _write_reader: MemoryObjectReceiveStream[SessionMessage]
    _stderr: deque[bytes] = field(default_factory=lambda: deque(maxlen=64))
    _known: dict[int, int] = field(default_factory=dict)
    stdout_closed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (bounded)."""
        text = b"".join(self._stderr)[-_STDERR_TAIL_BYTES:].decode("utf-8", "replace")
        return text.strip()

    async def wait_exit(self, grace: float) -> int | None:
        """The exit code once the process ended within ``grace`` seconds, else None."""
        with anyio.move_on_after(grace):
            # Not process.wait(): on asyncio it also waits for pipe EOF, which a surviving
            # grandchild holding the pipe would delay; the SDK's stdio client polls too.
            while self.process.returncode is None:  # noqa: ASYNC110 - no exit event to await
                await anyio.sleep(_POLL)
        return self.process.returncode

    async def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        try:
            async for chunk in self.process.stdout:
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        await self._route(line)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            self.stdout_closed.set()
            # The server is gone or going: what it started must not outlive it. Swept
            # before the read side closes, so a failed call finds it done.
            self._record_descendants()
            _kill_survivors(self._known.items())
            self._read_writer.close()

    async def _route(self, line: bytes) -> None:
        try:
            data = json.loads(line)
        except ValueError as exc:
            logger.warning("codex wrote a line that is not JSON; ignored")
            await self._read_writer.send(exc)
            return
        if not isinstance(data, dict):
            return
        method = data.get("method")
        raw_params = data.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        if method == EVENT_METHOD and "id" not in data:
            self.tap.on_event(params)
            if _event_type(params) in _SPAWNING_EVENTS:
                self._record_descendants()
            return
        if isinstance(method, str) and "id" in data:
            self.tap.on_server_request(data["id"], method, params)
        try:
            message = jsonrpc_message_adapter.validate_python(data, by_name=False)
        except ValueError as exc:
            await self._read_writer.send(exc)
            return
        await self._read_writer.send(SessionMessage(message))

    async def _pump_stdin(self) -> None:
        assert self.process.stdin is not None
        try:
            async with self._write_reader:
                async for session_message in self._write_reader:
                    message = session_message.message
                    if isinstance(message, JSONRPCRequest) and message.method == "tools/call":
                        self.tap.on_tool_call(message.id, message.params or {})
                    data = message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await self.process.stdin.send(data.encode("utf-8"))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # The server is gone: end the read side so waiting requests fail at once.
            self._read_writer.close()

    async def _watch_descendants(self) -> None:
        """Keep a record of the process tree under the server (pid and start time).

        A killed server's children are re-parented and can no longer be found from it;
        this record is how they are swept anyway.
        """
        while not self.stdout_closed.is_set():
            self._record_descendants()
            with anyio.move_on_after(DESCENDANT_SCAN_INTERVAL):
                await self.stdout_closed.wait()

    def _record_descendants(self) -> None:
        if self.process.returncode is None:
            self._known.update(descendants(self.pid))

    async def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for chunk in self.process.stderr:
                self._stderr.append(chunk)

    async def shutdown(self) -> None:
        """Stop the server: EOF on stdin, then TERM, then KILL; sweep what it left."""
        self._record_descendants()
        self.write_stream.close()
        if self.process.stdin is not None:
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self.process.stdin.aclose()
        if await self.wait_exit(STDIN_CLOSE_GRACE) is None:
            _signal_group(self.pid, signal.SIGTERM)
            if await self.wait_exit(TERM_GRACE) is None:
                _signal_group(self.pid, signal.SIGKILL)
                if await self.wait_exit(KILL_GRACE) is None:
                    logger.warning("codex mcp-server %d survived SIGKILL", self.pid)
        _signal_group(self.pid, signal.SIGKILL)  # anything left in its process group
        _kill_survivors(self._known.items())
        self.read_stream.close()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stream.aclose()


def _dies_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGKILL when this process dies, however it dies.

    codex runs in its own session (so a signal to our process group does not reach it)
    and does not exit on stdin EOF while a turn waits (for the model or an approval):
    without a parent-death signal a SIGKILLed orchestrator would leave it running.
    ``setpriv`` (util-linux) sets the signal and then execs codex, keeping its PID.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or shutil.which(command[0]) is None:
        return command  # a missing executable still fails to start, with its own error
    return [setpriv, "--pdeathsig", "KILL", "--", *command]


@asynccontextmanager
async def open_codex_process(
    command: list[str], *, env: Mapping[str, str], cwd: Path, tap: Tap
) -> AsyncIterator[CodexProcess]:
    """Spawn ``command`` (in its own session) and bridge its stdio; stop it on exit.

    Raises:
        OSError: the executable could not be started.
    """
    process = await anyio.open_process(
        _dies_with_parent(command), env=dict(env), cwd=cwd, start_new_session=True
    )
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](
        math.inf
    )
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](math.inf)
    codex = CodexProcess(
        process=process,
        tap=tap,
        read_stream=read_stream,
        write_stream=write_stream,
        _read_writer=read_writer,
        _write_reader=write_reader,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(codex._pump_stdout)
            tg.start_soon(codex._pump_stdin)
            tg.start_soon(codex._pump_stderr)
            tg.start_soon(codex._watch_descendants)
            try:
                yield codex
            finally:
                with anyio.CancelScope(shield=True):
                    await codex.shutdown()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGKILL)
            await _close_quietly(process)


async def _close_quietly(process: Process) -> None:
    with suppress(Exception), anyio.move_on_after(KILL_GRACE):
        await process.aclose()


def _event_type(params: Mapping[str, Any]) -> str | None:
    msg = params.get("msg")
    return msg.get("type") if isinstance(msg, dict) else None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_survivors(processes: Iterable[tuple[int, int]]) -> None:
    for pid, ticks in processes:
        if is_same_process(pid, ticks):  # not a stranger that got the pid since
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
