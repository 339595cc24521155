"""JSON-RPC 2.0 over a codex process's stdio: one JSON object per line, both ways.

``codex app-server`` speaks it (``codex mcp-server`` goes through the MCP SDK instead,
see :mod:`agents._streams`). :class:`JsonRpcConnection` is the whole client side:

- :meth:`~JsonRpcConnection.request` sends a request and awaits its response (an
  error response raises :class:`RpcError`; a server that goes away raises
  :class:`ConnectionClosedError` in every waiting request at once);
- notifications go to a synchronous handler in wire order, as the reader reads them,
  so every notification of a turn is seen before anything the turn's end wakes up;
- requests from the server (approvals) go to an async handler, each in a task of its
  own, so a person taking minutes to decide never holds up the reader or other turns.

Why not the SDK's ``CodexClient``: it copies our whole environment into codex, runs
approval handlers on its only reader thread and accepts every approval by default
(see docs/agents.md). Its generated models are used for the messages instead.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

__all__ = [
    "ConnectionClosedError",
    "JsonObject",
    "JsonRpcConnection",
    "LineChannel",
    "RpcError",
]

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
NotificationHandler = Callable[[str, Mapping[str, Any]], None]
RequestHandler = Callable[[str, Mapping[str, Any]], Awaitable[JsonObject]]

METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603


class LineChannel(Protocol):
    """What the connection needs of a process: its stdout lines and its stdin."""

    @property
    def lines(self) -> AsyncIterator[bytes]:
        """Each non-empty stdout line; ends when stdout does."""
        ...

    async def send(self, data: bytes) -> bool:
        """Write to stdin; False once the process no longer reads it."""
        ...


class RpcError(Exception):
    """The server answered a request with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


class ConnectionClosedError(Exception):
    """The server's side of the connection ended (it exited or closed stdout)."""


class _Pending:
    """One request waiting for its response."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.done = anyio.Event()
        self.result: JsonObject | None = None
        self.error: Exception | None = None

    def resolve(self, message: Mapping[str, Any]) -> None:
        error = message.get("error")
        if isinstance(error, Mapping):
            code = error.get("code")
            self.error = RpcError(
                self.method, code if isinstance(code, int) else 0, str(error.get("message", ""))
            )
        else:
            result = message.get("result")
            self.result = dict(result) if isinstance(result, Mapping) else {}
        self.done.set()

    def fail(self, error: Exception) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class JsonRpcConnection:
    """The client side of one JSON-RPC connection; requests may run concurrently.

    Args:
        channel: the process's stdout lines and stdin.
        on_notification: called synchronously, in wire order, for each notification.
        on_request: answers a request of the server (its result object); it runs in a
            task of its own, and an exception becomes a JSON-RPC error answer.
        on_line: sees every parsed message first (e.g. to record the process tree
            before anyone hears of a command starting).
        on_close: called once the connection has ended (requests waiting fail too).
    """

    def __init__(
        self,
        channel: LineChannel,
        *,
        on_notification: NotificationHandler,
        on_request: RequestHandler,
        on_line: Callable[[Mapping[str, Any]], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._channel = channel
        self._on_notification = on_notification
        self._on_request = on_request
        self._on_line = on_line
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._tasks: TaskGroup | None = None
        self.ended = anyio.Event()
        """Set once the server's side of the connection has ended."""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[JsonRpcConnection]:
        """Read the connection while the context runs; its request tasks end with it."""
        async with anyio.create_task_group() as tg:
            self._tasks = tg
            tg.start_soon(self._read)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
                self._close(ConnectionClosedError("the connection was closed"))

    def next_id(self) -> int:
        """A fresh request id, for a caller that must know it before the request is sent."""
        return next(self._ids)

    async def request(
        self, method: str, params: Mapping[str, Any], *, request_id: int | None = None
    ) -> JsonObject:
        """Send ``method`` (with ``request_id`` from :meth:`next_id`, or a new one) and
        await its result.

        Raises:
            RpcError: the server answered with an error.
            ConnectionClosedError: the server went away first.
        """
        if self.ended.is_set():
            raise ConnectionClosedError("the server's connection has ended")
        request_id = request_id if request_id is not None else self.next_id()
        pending = self._pending[request_id] = _Pending(method)
        try:
            message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            if not await self._write(message):
                raise ConnectionClosedError("the server no longer reads its input")
            await pending.done.wait()
        finally:
            self._pending.pop(request_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result or {}

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification (no answer comes); nothing happens if the server is gone."""
        message: JsonObject = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._write(message)

    async def _write(self, message: Mapping[str, Any]) -> bool:
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n"
        return await self._channel.send(line.encode("utf-8"))

    async def _read(self) -> None:
        try:
            async for line in self._channel.lines:
                message = _parse(line)
                if message is not None:
                    self._dispatch(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            self._close(ConnectionClosedError("the server's connection ended"))

    def _dispatch(self, message: Mapping[str, Any]) -> None:
        if self._on_line is not None:
            self._on_line(message)
        method = message.get("method")
        params = message.get("params")
        params = params if isinstance(params, Mapping) else {}
        if isinstance(method, str) and "id" in message:
            assert self._tasks is not None
            self._tasks.start_soon(self._answer, message["id"], method, params)
        elif isinstance(method, str):
            try:
                self._on_notification(method, params)
            except Exception:
                logger.exception("handling the codex notification %s failed", method)
        elif isinstance(message.get("id"), int):
            pending = self._pending.get(message["id"])
            if pending is not None:
                pending.resolve(message)

    async def _answer(self, request_id: Any, method: str, params: Mapping[str, Any]) -> None:
        reply: JsonObject = {"jsonrpc": "2.0", "id": request_id}
        try:
            reply["result"] = await self._on_request(method, params)
        except LookupError:
            reply["error"] = {"code": METHOD_NOT_FOUND, "message": f"unsupported: {method}"}
        except Exception:
            logger.exception("answering the codex request %s failed", method)
            reply["error"] = {"code": INTERNAL_ERROR, "message": "the client failed"}
        await self._write(reply)

    def _close(self, error: Exception) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        for pending in list(self._pending.values()):
            pending.fail(error)
        if self._on_close is not None:
            self._on_close()


def _parse(line: bytes) -> Mapping[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        logger.warning("codex wrote a line that is not JSON; ignored")
        return None
    return data if isinstance(data, Mapping) else None
