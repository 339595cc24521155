"""Foreground servers stop on Ctrl-C and SIGTERM, even when their parent ignored SIGINT.

Python maps SIGINT to ``KeyboardInterrupt`` only when SIGINT was not ignored at start;
a background job of a non-interactive shell (``make test &``, many CI runners) starts
with SIGINT ignored, and a server relying on ``KeyboardInterrupt`` then never stops on
``kill -INT``. So every foreground server installs its own handlers::

    with stop_signals() as stop:
        server.start()
        print("listening on ...")      # a signal from here on is not lost
        stop.wait(alive=lambda: server.alive)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CHECK_SECONDS = 0.5


class StopRequest:
    """Set by a stop signal; :meth:`wait` blocks until then (or until the server dies)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: signal.Signals | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int) -> None:
        self.signal = signal.Signals(signum)
        self._event.set()

    def wait(self, *, alive: Callable[[], bool] = lambda: True) -> signal.Signals | None:
        """Block until a stop signal arrives or ``alive()`` turns false; the signal, if any."""
        while not self._event.wait(_CHECK_SECONDS):
            if not alive():
                break
        return self.signal


@contextmanager
def stop_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Handle ``signals`` by setting a :class:`StopRequest` while the block runs.

    Main thread only (Python's rule for signal handlers); the previous handlers are
    restored on exit.
    """
    request = StopRequest()

    def handle(signum: int, frame: FrameType | None) -> None:
        request.set(signum)

    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
