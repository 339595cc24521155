"""The checks made before any route runs: the bearer token first, then the body's size.

:class:`RequestGuard` is plain ASGI middleware, so it sees a request's headers before
anything has read its body. A request without the right token is answered 401 at once
and its body is never read (the connection is closed, so what the client keeps sending
is dropped by the kernel, not buffered by us). An authorised body is read in the chunks
it arrives in, up to ``max_body_bytes``: a ``content-length`` over the limit, or a
chunked body that passes it, is answered 413 and reaches no route, so nothing is stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import error_response

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""4 MiB: the largest manifest our tests produce is about 0.25 MB (twenty racing processes)."""
UNAUTHORIZED_MESSAGE = "missing or invalid bearer token"


class RequestGuard:
    """ASGI middleware: token before body, and a body limit, on every path but ``open_paths``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        open_paths: Collection[str] = ("/health",),
    ) -> None:
        self._app = app
        self._token = token.encode()
        self._max_body_bytes = max_body_bytes
        self._open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open_paths:
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._authorized(headers.get("authorization")):
            refusal = error_response(
                401,
                UNAUTHORIZED_MESSAGE,
                headers={"www-authenticate": "Bearer", "connection": "close"},
            )
            await refusal(scope, receive, send)
            return
        body = await self._body(headers, receive)
        if body is None:
            message = f"the request body is over the limit of {self._max_body_bytes} bytes"
            too_large = error_response(413, message, headers={"connection": "close"})
            await too_large(scope, receive, send)
            return
        await self._app(scope, _replay(body, receive), send)

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(value.encode(), self._token)

    async def _body(self, headers: Headers, receive: Receive) -> bytes | None:
        """The whole body, or None once it is known to be over the limit (not read further)."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the client's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
