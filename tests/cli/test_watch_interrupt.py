"""``approvals --watch`` stops at Ctrl-C even when it lands inside a refresh."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

from orchestrator.cli._approvals import _watch
from schemas import WaitingGate


def test_ctrl_c_during_a_refresh_whose_client_swallows_the_cancel_stops_the_watch() -> None:
    """As the Prefect client may: ``asyncio.run``'s own handler would only cancel the
    refresh, the refresh would return normally and the watch refresh for ever."""
    refreshes = 0

    async def swallowing_refresh() -> list[WaitingGate]:
        os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            pass  # what a client retrying its request does
        return []

    def listing() -> list[WaitingGate]:
        nonlocal refreshes
        refreshes += 1
        assert refreshes < 3, "the watch went on after Ctrl-C"
        return asyncio.run(swallowing_refresh())

    before = signal.getsignal(signal.SIGINT)
    assert threading.current_thread() is threading.main_thread()
    _watch(listing, interval=0.2)
    assert refreshes == 1
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
