"""One harness for every ASGI server of the dev stack: uvicorn in a background thread.

The socket is bound before the thread starts, so ``port=0`` gets a free port with no
race, and :attr:`UvicornThread.url` is known as soon as :meth:`UvicornThread.start`
returns (it returns once uvicorn serves). Tests run it in their own process; the
server entry points (``python -m devstack.replay``, ``python -m devstack.runs_api``,
``orchestrator cloud serve``) run it under :func:`devstack.stop_signals` in the
foreground. uvicorn installs no signal handler from a thread: stopping is ours.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Literal, Self

import uvicorn
from starlette.types import ASGIApp

from orchestrator.exceptions import DevStackError, InvalidInputError
from orchestrator.supervisor import Stoppable

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
_POLL = 0.005


class UvicornThread(Stoppable):
    """``app`` served by uvicorn from a thread of this process; stop it with :meth:`stop`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: str,
        host: str = LOOPBACK,
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "auto",
        log_config: dict[str, Any] | None = None,
        log_level: str = "warning",
        access_log: bool = False,
        graceful_seconds: float = 2.0,
    ) -> None:
        """Configure (start with :meth:`start` or ``with``).

        Args:
            app: The ASGI application.
            name: What to call it in messages and thread names.
            host: The address to listen on (loopback by default).
            port: The port; 0 picks a free one.
            lifespan: Whether the app's lifespan events run.
            log_config: A ``logging.config.dictConfig`` for uvicorn (default: uvicorn's).
            log_level: uvicorn's log level.
            access_log: Log every request.
            graceful_seconds: How long a stop waits for requests in flight.
        """
        self.name = name
        self._host = host
        self._port = port
        self._config = uvicorn.Config(
            app,
            lifespan=lifespan,
            log_config=log_config if log_config is not None else uvicorn.config.LOGGING_CONFIG,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=max(1, round(graceful_seconds)),
        )
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._exit_code: int | str | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise DevStackError(f"{self.name} is not started", service=self.name)
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """``http://host:port`` (an IPv6 host in brackets)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def alive(self) -> bool:
        """Serving, and not told to stop."""
        return (
            self._thread is not None
            and self._thread.is_alive()
            and self._server is not None
            and not self._server.should_exit
        )

    def start(self, *, timeout: float = START_TIMEOUT) -> Self:
        """Bind, serve from a thread, and return once uvicorn serves.

        Raises:
            InvalidInputError: the address cannot be listened on.
            DevStackError: the server did not start within ``timeout`` seconds.
        """
        self._socket = bind(self._host, self._port)
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(
            target=self._serve, name=f"{self.name}-{self.port}", daemon=True
        )
        self._thread.start()
        self._wait_started(timeout)
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop serving (requests in flight get ``graceful_seconds``) and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def _enter(self) -> None:
        self.start()

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except SystemExit as exc:  # uvicorn's answer to a failed start-up (it logged why)
            self._exit_code = exc.code

    def _wait_started(self, timeout: float) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + timeout
        # uvicorn offers a flag, not an event, to say it serves.
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL)
        if not self._server.started:
            exited = not self._thread.is_alive()
            self.stop()
            what = (
                f"it exited (code {self._exit_code})"
                if exited
                else f"not serving after {timeout:.0f} s"
            )
            raise DevStackError(
                f"{self.name} did not start: {what}; its log says why", service=self.name
            )


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening).

    Raises:
        InvalidInputError: the address is taken or not ours.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so,
    # and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def free_port(host: str = LOOPBACK) -> int:
    """A port on ``host`` that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(port: int, *, service: str, host: str = LOOPBACK) -> None:
    """Refuse a ``port`` that is taken, before ``service`` is started on it.

    Raises:
        DevStackError: it is in use.
    """
    with socket.socket() as sock:
        # As the server will bind: connections of a stopped one in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise DevStackError(
                f"port {port} on {host} is in use; pass another port for {service}",
                service=service,
            ) from None
