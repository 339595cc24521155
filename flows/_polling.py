"""Waiting for Prefect flow runs to reach a final state, by reading them in turn.

One poller for the build fan-out (one subtask's deployment run, no deadline) and the
nightly run (its batch of pipeline runs, within its deadline). Each caller says how the
runs still going are read: one ``read_flow_run`` per run, or one filtered read per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol
from uuid import UUID

import anyio
from prefect.client.schemas.objects import FlowRun


class ReadRuns(Protocol):
    """Reads the flow runs of ``flow_run_ids`` (those it finds), once per poll."""

    async def __call__(self, flow_run_ids: set[UUID], /) -> Iterable[FlowRun]: ...


async def poll_final(
    read: ReadRuns,
    flow_run_ids: Iterable[UUID],
    *,
    poll_seconds: float,
    within: float | None = None,
    on_final: Callable[[FlowRun], object] | None = None,
) -> dict[UUID, FlowRun]:
    """Read the flow runs until each is final, or until ``within`` seconds have passed.

    Args:
        read: How the runs still going are read.
        flow_run_ids: The runs to wait for.
        poll_seconds: Between two reads.
        within: Seconds from now after which it stops waiting; None waits as long as it
            takes.
        on_final: Called once per run, as it is first seen final.

    Returns:
        The last read of each run read: final, or still going when the time ran out.
    """
    pending, last = set(flow_run_ids), dict[UUID, FlowRun]()
    with anyio.move_on_after(within):
        while pending:
            for run in await read(set(pending)):
                last[run.id] = run
                if run.state is not None and run.state.is_final():
                    pending.discard(run.id)
                    if on_final is not None:
                        on_final(run)
            if pending:
                await anyio.sleep(poll_seconds)
    return last
