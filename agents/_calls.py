"""One in-flight agent call, whatever the backend: its events, its subscribers, its approvals.

A backend routes each event of a call to its :class:`CallState` as it reads it off the
wire (synchronously, in order); :func:`delivering` runs the subscribers in a task of
the call's own, so a slow subscriber never holds up the reader. Approvals are decided
in the calling task's context (its flow run, its logger), whichever task opened the
session, and never take longer than the deadline: a hang or an exception is a denial.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .approvals import ApprovalAnswer, ApprovalRecord, ApprovalRequest, Approver
from .events import CodexEvent, EventCallback

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class CallState:
    """What one in-flight call has collected so far."""

    tool: str
    cwd: str | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    request_id: int | str | None = None
    events: list[CodexEvent] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    _sink: MemoryObjectSendStream[CodexEvent] | None = None

    def add(self, event: CodexEvent) -> None:
        """Record ``event`` and pass it to the subscribers (never blocks)."""
        self.events.append(event)
        if self._sink is not None:
            with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._sink.send_nowait(event)

    async def decide(
        self, approver: Approver, request: ApprovalRequest, *, deadline: float
    ) -> ApprovalAnswer:
        """Ask ``approver`` in the calling task's context, and record the answer."""
        task = asyncio.get_running_loop().create_task(
            decide(approver, request, deadline=deadline), context=self.context
        )
        answer = await task
        self.approvals.append(ApprovalRecord(request=request, answer=answer))
        return answer


@asynccontextmanager
async def delivering(
    call: CallState, callbacks: Sequence[EventCallback | None]
) -> AsyncIterator[CallState]:
    """Pass the call's events to ``callbacks`` while the context runs; all are delivered
    when it ends."""
    sink, source = anyio.create_memory_object_stream[CodexEvent](math.inf)
    call._sink = sink
    async with anyio.create_task_group() as tg:
        tg.start_soon(_deliver, source, [cb for cb in callbacks if cb is not None])
        with sink:
            yield call


async def _deliver(
    source: MemoryObjectReceiveStream[CodexEvent], callbacks: list[EventCallback]
) -> None:
    async with source:
        async for event in source:
            for callback in callbacks:
                try:
                    await callback(event)
                except Exception:
                    logger.exception("an event callback raised; the call goes on")


async def decide(
    approver: Approver, request: ApprovalRequest, *, deadline: float
) -> ApprovalAnswer:
    """The approver's answer within ``deadline`` seconds; a denial when it has none."""
    try:
        with anyio.fail_after(deadline):
            return await approver(request)
    except TimeoutError:
        return ApprovalAnswer(approved=False, reason=f"no decision within {deadline:g}s")
    except Exception:
        logger.exception("the approver raised; denying")
        return ApprovalAnswer(approved=False, reason="the approver failed: denied")
