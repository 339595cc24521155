"""A codex server process: started so it cannot outlive us, read and written as lines,
stopped without orphans.

Everything here is about the operating-system process, nothing about MCP or JSON-RPC
(the stream factories frame the lines), so both codex backends can run on it:

- :func:`spawn` is the one place a codex process is started (in its own session, with
  a parent-death signal); a test fixture can wrap it to check what is started;
- :class:`CodexProcess` gives its stdout as lines, its stdin as :meth:`~CodexProcess.send`,
  the tail of its stderr, its exit code, and a record of the process tree under it (pid
  and start time) so that what it started is swept when it dies;
- :func:`open_codex_process` stops it on exit: EOF on stdin, then SIGTERM and SIGKILL
  to its process group and every recorded descendant still alive, all bounded and
  shielded from cancellation.

Meant to move onto the core process supervisor (stop by PID and start time) when there
is one; nothing outside this module touches the OS process.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator.processes import descendants
from orchestrator.supervisor import dies_with_parent, signal_processes

logger = logging.getLogger(__name__)

STDIN_CLOSE_GRACE = 2.0
TERM_GRACE = 2.0
KILL_GRACE = 2.0
_POLL = 0.01
_STDERR_TAIL_BYTES = 8192
DESCENDANT_SCAN_INTERVAL = 0.5
"""How often the process tree under the server is recorded, to sweep it if the server dies."""
SPAWN_DELAY = 0.05
"""After :meth:`CodexProcess.scan_soon`: the server says it starts a command just before
it spawns it."""

_PIPE_ERRORS = (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError)


@dataclass(eq=False)
class CodexProcess:
    """A running codex server: its stdout as lines, its stdin, its exit, its descendants."""

    process: Process
    lines: MemoryObjectReceiveStream[bytes]
    """Each non-empty line of stdout (without its newline); ends when stdout does."""
    _line_sink: MemoryObjectSendStream[bytes]
    _stderr: deque[bytes] = field(default_factory=lambda: deque(maxlen=64))
    _known: dict[int, int] = field(default_factory=dict)
    stdout_closed: anyio.Event = field(default_factory=anyio.Event)
    _wake: anyio.Event = field(default_factory=anyio.Event)

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

    async def send(self, data: bytes) -> bool:
        """Write ``data`` to the server's stdin; False when it no longer reads it."""
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send(data)
        except _PIPE_ERRORS:
            return False
        return True

    def record_descendants(self) -> None:
        """Record the process tree under the server now (it may just have started a child).

        A killed server's children are re-parented and can no longer be found from it;
        this record is how they are swept anyway.
        """
        if self.process.returncode is None:
            self._known.update(descendants(self.pid))

    def scan_soon(self) -> None:
        """Record the process tree shortly, in the background: the server is starting a
        command (the scan reads every process's stat, too slow for the line reader)."""
        self._wake.set()

    async def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        try:
            async for chunk in self.process.stdout:
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        await self._line_sink.send(line)
        except _PIPE_ERRORS:
            pass
        finally:
            self.stdout_closed.set()
            self._wake.set()
            # The server is gone or going: what it started must not outlive it. Swept
            # before the lines end, so a call that fails on it finds it done.
            self.record_descendants()
            signal_processes(self._known, signal.SIGKILL)
            self._line_sink.close()

    async def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        with suppress(*_PIPE_ERRORS):
            async for chunk in self.process.stderr:
                self._stderr.append(chunk)

    async def _watch_descendants(self) -> None:
        while not self.stdout_closed.is_set():
            if self.process.returncode is None:
                # In a thread: a scan takes ~20-40 ms on a busy machine, which the event
                # loop (the server's lines, the turns) should not wait for.
                self._known.update(await anyio.to_thread.run_sync(descendants, self.pid))
            with anyio.move_on_after(DESCENDANT_SCAN_INTERVAL):
                await self._wake.wait()
            if self._wake.is_set() and not self.stdout_closed.is_set():
                self._wake = anyio.Event()
                await anyio.sleep(SPAWN_DELAY)

    async def shutdown(self) -> None:
        """Stop the server: EOF on stdin, then TERM, then KILL; sweep what it left."""
        self.record_descendants()
        if self.process.stdin is not None:
            with suppress(*_PIPE_ERRORS):
                await self.process.stdin.aclose()
        if await self.wait_exit(STDIN_CLOSE_GRACE) is None:
            await self._signal_until_gone()
        _signal_group(self.pid, signal.SIGKILL)  # anything left in its process group
        signal_processes(self._known, signal.SIGKILL)
        self.lines.close()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                with suppress(*_PIPE_ERRORS):
                    await stream.aclose()

    async def _signal_until_gone(self) -> None:
        _signal_group(self.pid, signal.SIGTERM)
        if await self.wait_exit(TERM_GRACE) is None:
            _signal_group(self.pid, signal.SIGKILL)
            if await self.wait_exit(KILL_GRACE) is None:
                logger.warning("codex server %d survived SIGKILL", self.pid)


async def spawn(command: list[str], *, env: Mapping[str, str], cwd: Path) -> Process:
    """Start ``command`` in a session of its own, to die with this process.

    The one place a codex server process is started (tests wrap it to check what).

    Raises:
        OSError: the executable could not be started.
    """
    return await anyio.open_process(
        _dies_with_parent(command), env=dict(env), cwd=cwd, start_new_session=True
    )


@asynccontextmanager
async def open_codex_process(
    command: list[str], *, env: Mapping[str, str], cwd: Path
) -> AsyncIterator[CodexProcess]:
    """Spawn ``command`` and pump its stdio; stop it (and what it started) on exit.

    Raises:
        OSError: the executable could not be started.
    """
    process = await spawn(command, env=env, cwd=cwd)
    line_sink, lines = anyio.create_memory_object_stream[bytes](math.inf)
    codex = CodexProcess(process=process, lines=lines, _line_sink=line_sink)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(codex._pump_stdout)
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


def _dies_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGKILL when this process dies, however it dies.

    codex runs in its own session (so a signal to our process group does not reach it)
    and does not exit on stdin EOF while a turn waits (for the model or an approval):
    without a parent-death signal a SIGKILLed orchestrator would leave it running.
    """
    if shutil.which(command[0]) is None:
        return command  # a missing executable still fails to start, with its own error
    return dies_with_parent(command, signal.SIGKILL)


async def _close_quietly(process: Process) -> None:
    with suppress(Exception), anyio.move_on_after(KILL_GRACE):
        await process.aclose()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
