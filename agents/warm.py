"""Codex servers started ahead of the call that will use them, and stopped behind it.

Starting ``codex mcp-server`` takes ~0.1 s and stopping it ~0.03 s; a run makes its
calls one after the other with orchestration work in between (flow runs, manifest
writes, git). :class:`WarmSessions` overlaps the two: it starts the next call's server
while that work runs, hands it out when the call comes, and stops each server in the
background once its call is done. Every call still gets a server (and CODEX_HOME) of
its own.

Each server lives in an asyncio task of its own (an MCP session must be closed by the
task that opened it); approvals and events still run in the calling task's context
(see :class:`agents.session.CodexSession` and :class:`agents.appserver.AppServerSession`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from .backend import BackendSession

__all__ = ["WarmSessions"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 15.0
"""How long closing the pool waits for its servers to stop (each stops in ~0.03 s)."""


class _HostedSession:
    """One session, opened and closed by a task of its own."""

    def __init__(self, make: Callable[[], BackendSession]) -> None:
        self._opened: asyncio.Future[BackendSession] = asyncio.get_running_loop().create_future()
        self._release = asyncio.Event()
        self.task = asyncio.create_task(self._host(make), name="codex-session")

    async def _host(self, make: Callable[[], BackendSession]) -> None:
        try:
            async with make() as session:
                self._opened.set_result(session)
                await self._release.wait()
        except asyncio.CancelledError:
            self._opened.cancel()  # no-op once opened
            raise
        except Exception as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)  # the taker raises it
            else:
                logger.warning("stopping a codex server failed: %s", exc)

    async def session(self) -> BackendSession:
        """The open session; raises what opening it raised."""
        return await asyncio.shield(self._opened)

    @property
    def usable(self) -> bool:
        """Still starting, or started and alive (a dead spare is not handed out)."""
        if not self._opened.done():
            return True
        if self._opened.cancelled() or self._opened.exception() is not None:
            return False
        return self._opened.result().alive

    def release(self) -> None:
        """Stop the server (in the background)."""
        self._release.set()
        if self._opened.done() and not self._opened.cancelled():
            self._opened.exception()  # retrieved: a spare that failed to start is not an error


class WarmSessions:
    """Codex sessions of one recipe, each for one call, the next one started in advance.

    Args:
        make: Builds an unopened session (config, credentials, approver).
    """

    def __init__(self, make: Callable[[], BackendSession]) -> None:
        self._make = make
        self._spare: _HostedSession | None = None
        self._calls_ahead = 0
        self._hosts: set[_HostedSession] = set()
        self._closed = False

    def prepare(self, calls: int = 1) -> None:
        """``calls`` agent calls come next: start a server for the first of them now,
        and for each following one when its predecessor takes its server."""
        if self._closed or calls < 1:
            return
        self._calls_ahead = calls
        self._start_spare()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[BackendSession]:
        """An open session for one call: the spare when there is a usable one, else a new one."""
        host = self._take()
        if self._calls_ahead > 0:
            self._calls_ahead -= 1
            if self._calls_ahead > 0:
                self._start_spare()
        try:
            yield await host.session()
        finally:
            host.release()

    async def aclose(self) -> None:
        """Stop every server of the pool, the spare included, and wait for them."""
        self._closed = True
        self._calls_ahead = 0
        self._spare = None  # one of the hosts
        hosts = list(self._hosts)
        for host in hosts:
            host.release()
        tasks = [host.task for host in hosts]
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.done():
                task.cancel()

    def _take(self) -> _HostedSession:
        spare, self._spare = self._spare, None
        if spare is not None and spare.usable:
            return spare
        if spare is not None:
            spare.release()
        return self._start()

    def _start_spare(self) -> None:
        self._spare = self._take()

    def _start(self) -> _HostedSession:
        host = _HostedSession(self._make)
        self._hosts.add(host)
        host.task.add_done_callback(lambda _: self._hosts.discard(host))
        return host
