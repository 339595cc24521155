"""A clock pinned to a day, for runs that must start on one UTC day whatever the time.

In this process: ``with pinned_clock_at(START): ...``. In an ``orchestrator`` process of
its own: ``python tests/helpers/pinned_cli.py START ARGS...`` is ``orchestrator ARGS...``
with its clock pinned the same way (:data:`PINNED_CLI`).

The clock starts at START and goes on at the system's pace (durations stay real). Pin
to a day in the past: a run's manifest files are stamped by the system's clock, and a
file last written before the day a run counts in is not read for the day's budget.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

PINNED_CLI = Path(__file__).resolve()


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A clock that reads ``start`` now and goes on at the system's pace."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


@contextmanager
def pinned_clock_at(start: datetime) -> Iterator[datetime]:
    """This process's clock starts at ``start`` for the block; restored after it."""
    from schemas import set_clock

    previous = set_clock(clock_from(start))
    try:
        yield start
    finally:
        set_clock(previous)


def _main() -> None:
    sys.path.pop(0)  # this script's folder: its modules must not shadow what the CLI imports
    from orchestrator.cli import main
    from schemas import set_clock

    start, *args = sys.argv[1:]
    set_clock(clock_from(datetime.fromisoformat(start)))
    sys.argv = ["orchestrator", *args]
    main()


if __name__ == "__main__":
    _main()
