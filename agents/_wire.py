"""MCP message streams with a tap: our observers see each message in wire order, before
the SDK does.

Why not the SDK's own hooks: its notification bindings deliver through queues (a
call's result can overtake its last events), and its typed elicitation callback
drops codex's ``codex_*`` fields. Wrapping the streams the SDK reads keeps both exact:

- a ``codex/event`` notification goes to :meth:`WireTap.on_event` and not on to the
  SDK, so every event of a call is recorded before its result is read;
- a request from the server is shown to :meth:`WireTap.on_server_request` with its raw
  params before the SDK handles it;
- a ``tools/call`` of ours is shown to :meth:`WireTap.on_tool_call` before it is sent,
  which ties the SDK's request id to our call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
from mcp.client._transport import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCNotification, JSONRPCRequest

from ._streams import EVENT_METHOD


class WireTap(Protocol):
    """Synchronous observers on the wire, called in order from the SDK's reader."""

    def on_event(self, params: Mapping[str, Any]) -> None:
        """A ``codex/event`` notification (not forwarded to the SDK)."""

    def on_server_request(self, request_id: Any, method: str, params: Mapping[str, Any]) -> None:
        """A request from the server, seen before the SDK handles it."""

    def on_tool_call(self, request_id: Any, params: Mapping[str, Any]) -> None:
        """A ``tools/call`` request of ours, seen before it is written."""


class _Closable(ABC):
    """``async with`` closes the stream."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the stream."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class TappedReader(_Closable):
    """The server-to-client stream, shown to a :class:`WireTap` first."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], tap: WireTap) -> None:
        self._inner = inner
        self._tap = tap
        self.ended = anyio.Event()
        """Set once the server's side of the connection has ended."""

    async def receive(self) -> SessionMessage | Exception:
        while True:
            try:
                item = await self._inner.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self.ended.set()
                raise
            if not isinstance(item, SessionMessage) or not self._consumed(item.message):
                return item

    def _consumed(self, message: object) -> bool:
        if isinstance(message, JSONRPCNotification) and message.method == EVENT_METHOD:
            self._tap.on_event(message.params or {})
            return True
        if isinstance(message, JSONRPCRequest):
            self._tap.on_server_request(message.id, message.method, message.params or {})
        return False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.ended.set()
        await self._inner.aclose()


class TappedWriter(_Closable):
    """The client-to-server stream, shown to a :class:`WireTap` first."""

    def __init__(self, inner: WriteStream[SessionMessage], tap: WireTap) -> None:
        self._inner = inner
        self._tap = tap

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        if isinstance(message, JSONRPCRequest) and message.method == "tools/call":
            self._tap.on_tool_call(message.id, message.params or {})
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()
