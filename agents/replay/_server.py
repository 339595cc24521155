"""Run the replay provider: in this process (a background thread) or as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from ._app import FaultKind, ReplayState, create_app
from ._fixtures import FixtureSet

LOOPBACK = "127.0.0.1"
READY_PATTERN = re.compile(r"replay provider listening on (http://\S+)")
_START_TIMEOUT = 15.0


class ReplayServer:
    """The replay provider on a loopback port, served from a background thread.

    Use as a context manager, or ``start()`` / ``stop()``. ``port=0`` picks a free port;
    :attr:`url` is the ``base_url`` for codex's provider settings.
    """

    def __init__(
        self,
        fixtures: Path | FixtureSet,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        request_log: Path | None = None,
        latency: float = 0.0,
        faults: Sequence[FaultKind] = (),
    ) -> None:
        fixture_set = fixtures if isinstance(fixtures, FixtureSet) else FixtureSet.load(fixtures)
        self.state = ReplayState(fixtures=fixture_set, latency=latency, request_log=request_log)
        for fault in faults:
            self.state.add_faults(fault)
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the replay server is not started")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The Responses API base URL (``.../v1``)."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def control_url(self) -> str:
        return f"http://{self._host}:{self.port}/_replay"

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.listen(128)
        self._socket = sock
        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, name=f"replay-provider-{self.port}", daemon=True
        )
        self._thread.start()
        self._wait_started()
        return self

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def _wait_started(self) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + _START_TIMEOUT
        # uvicorn offers a flag, not an event, to say it is serving.
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if not self._server.started:
            self.stop()
            raise RuntimeError("the replay provider did not start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_faults(self, kind: FaultKind, count: int = 1) -> None:
        self.state.add_faults(kind, count)

    def set_latency(self, seconds: float) -> None:
        self.state.set_latency(seconds)

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far (the request log's entries)."""
        return self.state.snapshot()


class ReplayProcess:
    """The replay provider as a subprocess (``python -m agents.replay``), stopped by PID."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def spawn(
        cls,
        fixtures: Path,
        *,
        port: int = 0,
        request_log: Path | None = None,
        latency: float = 0.0,
        host: str = LOOPBACK,
    ) -> ReplayProcess:
        """Start it and wait for its ready line.

        Raises:
            RuntimeError: it exited or did not print its URL within 15 s.
        """
        command = [sys.executable, "-m", "agents.replay", "--fixtures", str(fixtures)]
        command += ["--host", host, "--port", str(port), "--latency", str(latency)]
        if request_log is not None:
            command += ["--request-log", str(request_log)]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
        url = _read_ready_line(process)
        return cls(process, url)

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_ready_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    timer = threading.Timer(_START_TIMEOUT, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line)
            if match := READY_PATTERN.search(line):
                _drain(process)
                return match.group(1)
    finally:
        timer.cancel()
    process.wait()
    process.stdout.close()
    output = "".join(lines)[-2000:]
    raise RuntimeError(f"the replay provider exited ({process.returncode}): {output}")


def _drain(process: subprocess.Popen[str]) -> None:
    """Keep reading its output so a chatty server never blocks on a full pipe."""

    def run() -> None:
        assert process.stdout is not None
        with suppress(ValueError, OSError):
            for _ in process.stdout:
                pass

    threading.Thread(target=run, name=f"replay-drain-{process.pid}", daemon=True).start()
