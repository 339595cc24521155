"""The watch on one agent call's token events: it stops the call at its allowance."""

from __future__ import annotations

import anyio
import pytest

from agents import CodexEvent, ExecCommandBegin, TokenCount
from agents.budget_watch import TurnWatch
from orchestrator.turn_budget import Allowance
from schemas import TokenUsage

pytestmark = pytest.mark.anyio


def tokens(total: int) -> TokenCount:
    usage = TokenUsage(input_tokens=total, total_tokens=total)
    return TokenCount(type=TokenCount.TYPE, thread_id="t1", total=usage, last=usage)


async def test_the_call_is_cancelled_at_the_token_event_that_reaches_the_allowance() -> None:
    seen: list[CodexEvent] = []

    async def log(event: CodexEvent) -> None:
        seen.append(event)

    watch = TurnWatch(Allowance(tokens=2000), price=lambda t: 0.0)
    on_event = watch.watching(log)
    reached_at = None
    with watch.scope:
        await on_event(tokens(1280))
        await on_event(ExecCommandBegin(type=ExecCommandBegin.TYPE, command=["ls"]))
        await on_event(tokens(2560))  # cumulative: 2560 of the thread
        reached_at = "after 2560"
        await anyio.sleep(10)  # cancelled here: the call would go on without the watch
        reached_at = "never"
    assert reached_at == "after 2560"
    assert watch.interrupted
    assert watch.reason == "2560 tokens used in the turn, 2000 were left"
    assert watch.used.total_tokens == 2560
    assert len(seen) == 3  # the wrapped callback saw every event


async def test_threads_add_up_and_no_limit_means_no_interruption() -> None:
    watch = TurnWatch(Allowance(tokens=3000), price=lambda t: 0.0)
    on_event = watch.watching(None)
    with watch.scope:
        await on_event(tokens(1280))
        await on_event(tokens(1280).model_copy(update={"thread_id": "t2"}))
    assert (watch.used.total_tokens, watch.interrupted) == (2560, False)

    unwatched = TurnWatch(Allowance(), price=lambda t: None)
    with unwatched.scope:
        await unwatched.watching(None)(tokens(10**9))
    assert not unwatched.interrupted and unwatched.reason is None


async def test_a_cost_limit_stops_the_call_when_its_price_reaches_it() -> None:
    watch = TurnWatch(Allowance(cost_usd=0.01), price=lambda t: t.total_tokens / 100_000)
    with watch.scope:
        await watch.watching(None)(tokens(999))
        await watch.watching(None)(tokens(1000))
        await anyio.sleep(10)
    assert watch.interrupted and watch.reason == "$0.0100 in the turn, $0.0100 was left"
