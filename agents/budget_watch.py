"""Watching one agent call's token events against what it may still spend.

:class:`TurnWatch` wraps the call's event callback; when the tokens the call's threads
report (``token_count`` on mcp, ``thread/tokenUsage/updated`` on app-server, both
cumulative per thread) reach its allowance, it cancels its scope. Leaving the call that
way interrupts the turn on both backends: the mcp SDK sends ``notifications/cancelled``
for the abandoned ``tools/call`` and codex mcp-server submits an interrupt for it; the
app-server session sends ``turn/interrupt``. Token events come once per model response
(after that response's tools ran), so a turn stops at the response that crossed.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from orchestrator.turn_budget import Allowance
from schemas import TokenUsage

from .events import CodexEvent, EventCallback, TokenCount

__all__ = ["TurnWatch"]


class TurnWatch:
    """Cancels :attr:`scope` once the call's tokens (or their cost) reach ``allowance``."""

    def __init__(
        self, allowance: Allowance, *, price: Callable[[TokenUsage], float | None]
    ) -> None:
        self.allowance = allowance
        self.scope = anyio.CancelScope()
        self.reason: str | None = None
        self._price = price
        self._threads: dict[str, TokenUsage] = {}

    @property
    def used(self) -> TokenUsage:
        """The tokens the call's threads reported so far."""
        return sum(self._threads.values(), TokenUsage())

    @property
    def interrupted(self) -> bool:
        """The call was stopped by the budget (not just asked to stop after it ended)."""
        return self.reason is not None and self.scope.cancelled_caught

    def watching(self, on_event: EventCallback | None) -> EventCallback:
        """``on_event``, and the budget check after it."""

        async def watch(event: CodexEvent) -> None:
            if on_event is not None:
                await on_event(event)
            if isinstance(event, TokenCount) and event.total is not None:
                self._check(event.thread_id or "", event.total)

        return watch

    def _check(self, thread_id: str, total: TokenUsage) -> None:
        self._threads[thread_id] = total
        if self.reason is not None or not self.allowance.watched:
            return
        self.reason = self.allowance.reached(self.used, self._price(self.used))
        if self.reason is not None:
            self.scope.cancel()
