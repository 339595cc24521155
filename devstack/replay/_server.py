"""Run the replay provider: in this process (a background thread) or as a subprocess."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from orchestrator.supervisor import Stoppable

from .._process import ServerProcess
from .._uvicorn import LOOPBACK, UvicornThread
from .._wire import REPLAY_READY, ready_pattern
from ._app import FaultKind, ReplayState, create_app
from ._fixtures import FixtureSet

READY_PATTERN = ready_pattern(REPLAY_READY)
"""The line ``python -m devstack.replay`` prints once it serves; group 1 is codex's base_url."""


class ReplayServer(Stoppable):
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
        """Load the fixture set (serve it with :meth:`start`).

        Raises:
            ReplayFixtureError: the fixture set does not load.
        """
        fixture_set = fixtures if isinstance(fixtures, FixtureSet) else FixtureSet.load(fixtures)
        self.state = ReplayState(fixtures=fixture_set, latency=latency, request_log=request_log)
        for fault in faults:
            self.state.add_faults(fault)
        self._server = UvicornThread(
            create_app(self.state), name="replay-provider", host=host, port=port, lifespan="off"
        )

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        """The Responses API base URL (``.../v1``)."""
        return f"{self._server.url}/v1"

    @property
    def control_url(self) -> str:
        return f"{self._server.url}/_replay"

    @property
    def alive(self) -> bool:
        return self._server.alive

    def start(self) -> Self:
        """Serve; returns once it accepts connections.

        Raises:
            DevStackError: it did not start.
        """
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _enter(self) -> None:
        self.start()

    def add_faults(self, kind: FaultKind, count: int = 1) -> None:
        self.state.add_faults(kind, count)

    def set_latency(self, seconds: float) -> None:
        self.state.set_latency(seconds)

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far (the request log's entries)."""
        return self.state.snapshot()


class ReplayProcess(ServerProcess):
    """The replay provider as our subprocess (``python -m devstack.replay``), stopped by PID."""

    @classmethod
    def spawn(
        cls,
        fixtures: Path,
        *,
        port: int = 0,
        request_log: Path | None = None,
        latency: float = 0.0,
        host: str = LOOPBACK,
        log: Path | None = None,
    ) -> Self:
        """Start it and wait for its ready line; :attr:`url` is codex's ``base_url``.

        Raises:
            ProcessError: it exited (a bad fixture set: the message says why) or did
                not print its URL within 30 s.
        """
        command = [sys.executable, "-m", "devstack.replay", "--fixtures", str(fixtures)]
        command += ["--host", host, "--port", str(port), "--latency", str(latency)]
        if request_log is not None:
            command += ["--request-log", str(request_log)]
        return cls.start("replay", command, ready=READY_PATTERN, log=log)
