"""Foreground servers as a user runs them, and as a background job of a script runs them.

A background job of a non-interactive shell (``make test &``, many CI runners) starts
with SIGINT ignored, and Python then leaves it ignored instead of raising
``KeyboardInterrupt``: :func:`start` with ``sigint_ignored=True`` starts a command that
way, so a test shows the server still stops on SIGINT.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

STOP_WITHIN = 5.0
"""Seconds a foreground server may take to stop after SIGINT or SIGTERM."""

_SIGINT_IGNORED = 'trap "" INT; exec "$@"'  # an ignored signal stays ignored across exec


def start(
    command: Sequence[str], *, sigint_ignored: bool, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output on a pipe (and SIGINT ignored, if asked)."""
    if sigint_ignored:
        command = ["/bin/sh", "-c", _SIGINT_IGNORED, "sh", *command]
    return subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
    )


def read_until(process: subprocess.Popen[bytes], marker: str, *, timeout: float) -> str:
    """The process's output up to ``marker`` (read unbuffered, so select() tells the truth)."""
    assert process.stdout is not None
    fd, deadline, seen = process.stdout.fileno(), time.monotonic() + timeout, b""
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"no {marker!r} within {timeout} s; output so far:\n{seen!r}")
        seen += chunk
    return seen.decode()


def stop_with(process: subprocess.Popen[bytes], signum: signal.Signals) -> tuple[float, str]:
    """Send ``signum``; how long the process took to exit, and the rest of its output.

    Raises:
        AssertionError: it did not exit within :data:`STOP_WITHIN` seconds (it is killed).
    """
    started = time.monotonic()
    process.send_signal(signum)
    try:
        rest = process.communicate(timeout=STOP_WITHIN)[0].decode()
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=10)
        raise AssertionError(f"still running {STOP_WITHIN} s after {signum.name}") from None
    return time.monotonic() - started, rest
