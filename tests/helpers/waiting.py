"""Waiting on a condition with a deadline (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 120, *, every: float = 0.1) -> T:
    """``probe()`` once it is not None, polled every ``every`` s for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"nothing after {timeout} s"
        time.sleep(every)
    return found
