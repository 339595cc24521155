"""A loopback HTTP proxy in front of a real Prefect API that refuses some writes with 503.

It answers a refused request the way a Prefect server on SQLite answers a write that
found the database locked (``503`` with ``{"exception_message": "Service Unavailable"}``,
no ``Retry-After``), without forwarding it; every other request, and every byte after a
protocol upgrade (the events websocket), goes to the real server unchanged.

The writes it may refuse are the ones that create a flow run or a task run or set their
state: ``POST``/``PATCH`` to ``/api/flow_runs/``, ``/api/task_runs/``, ``.../<id>`` and
``.../<id>/set_state``. Which of them it refuses is decided by a rule over their running
count, so a test is deterministic: :func:`every_nth`, or any callable.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

WRITE = re.compile(r"^/api/(flow_runs|task_runs)/([0-9a-f-]{36}(/set_state)?)?$")
BODY = b'{"exception_message":"Service Unavailable"}'
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)

Rule = Callable[[int, str, str], bool]
"""``(count, method, path) -> refuse?``; ``count`` numbers the matching writes from 1."""


def every_nth(n: int) -> Rule:
    return lambda count, method, path: count % n == 0


@dataclass
class Counts:
    writes: int = 0
    refused: list[str] = field(default_factory=list)
    """``"METHOD path"`` of each refused request, in order."""


class FaultyApi:
    """The proxy, serving in a thread of its own until the ``with`` block ends."""

    def __init__(self, upstream_api_url: str, *, rule: Rule) -> None:
        parts = urlsplit(upstream_api_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rule = rule
        self.counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api"

    def __enter__(self) -> FaultyApi:
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(timeout=30)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        await self._server.wait_closed()

    def _refuses(self, method: str, path: str) -> bool:
        if method not in ("POST", "PATCH") or not WRITE.match(path):
            return False
        with self._lock:
            self.counts.writes += 1
            refuse = self.rule(self.counts.writes, method, path)
            if refuse:
                self.counts.refused.append(f"{method} {path}")
        return refuse

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        """One client connection: requests one by one (HTTP/1.1 sends the next only after
        the previous response), so a refusal never interleaves with a forwarded answer."""
        upstream: asyncio.StreamWriter | None = None
        pipe: asyncio.Task[None] | None = None
        try:
            while True:
                head = await client.readuntil(b"\r\n\r\n")
                method, path, headers = _parse(head)
                body = await client.readexactly(int(headers.get("content-length", "0")))
                if self._refuses(method, path):
                    to_client.write(REFUSAL)
                    await to_client.drain()
                    continue
                if upstream is None:
                    from_upstream, upstream = await asyncio.open_connection(*self._upstream)
                    pipe = asyncio.create_task(_pipe(from_upstream, to_client))
                upstream.write(head + body)
                await upstream.drain()
                if "upgrade" in headers.get("connection", "").lower() or (
                    "chunked" in headers.get("transfer-encoding", "").lower()
                ):
                    await _pipe(client, upstream)  # from here on, bytes as they come
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        finally:
            if pipe is not None:
                pipe.cancel()
            for writer in (upstream, to_client):
                if writer is not None:
                    writer.close()


def _parse(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, target.partition("?")[0], headers


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends, then close ``sink`` (so the other side reconnects)."""
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    sink.close()
