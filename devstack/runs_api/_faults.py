"""Fault injection for tests and demos: fail, delay or drop ``POST .../runs/import``."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from orchestrator.exceptions import InvalidInputError


class FaultPlan(BaseModel):
    """Faults the server injects into ``POST .../runs/import`` requests.

    Counters (``fail_next``, ``drop_after_commit``, ``delay_next``) count down as
    requests arrive; rates apply to every request the counters left alone.
    """

    model_config = ConfigDict(extra="forbid")

    fail_next: int = Field(default=0, ge=0, description="Answer the next N with fail_status.")
    fail_status: int = Field(default=500, description="429 or a 5xx.")
    retry_after: int | None = Field(
        default=None, ge=0, description="Retry-After seconds on injected failures."
    )
    drop_after_commit: int = Field(
        default=0, ge=0, description="Store the next N, then drop the connection unanswered."
    )
    fail_rate: float = Field(default=0.0, ge=0, le=1, description="Share failed, at random.")
    drop_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share stored then dropped, at random."
    )
    seed: int | None = Field(default=None, description="Seed of the random faults.")
    delay: float = Field(default=0.0, ge=0, le=60, description="Seconds to wait before handling.")
    delay_next: int | None = Field(
        default=None, ge=0, description="Delay only the next N (None: every request)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FaultPlan:
        if self.fail_status != 429 and not 500 <= self.fail_status <= 599:
            raise ValueError("fail_status must be 429 or a 5xx status")
        if self.fail_rate + self.drop_rate > 1:
            raise ValueError("fail_rate + drop_rate must not exceed 1")
        return self


@dataclass(frozen=True)
class FaultAction:
    """What to do to one request."""

    delay: float = 0.0
    fail_status: int | None = None
    retry_after: int | None = None
    drop: bool = False


class FaultInjector:
    """Hands out one :class:`FaultAction` per import request. Thread-safe."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._rng = random.Random()
        self.set(plan or FaultPlan())

    def set(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan.model_copy()
            self._rng = random.Random(plan.seed)

    def plan(self) -> FaultPlan:
        """The plan in force, with what is left of its counters."""
        with self._lock:
            return self._plan.model_copy()

    def next(self) -> FaultAction:
        with self._lock:
            delay = self._take_delay()
            plan = self._plan
            if plan.fail_next > 0:
                plan.fail_next -= 1
                return FaultAction(delay, plan.fail_status, plan.retry_after)
            if plan.drop_after_commit > 0:
                plan.drop_after_commit -= 1
                return FaultAction(delay, drop=True)
            draw = self._rng.random() if plan.fail_rate or plan.drop_rate else 1.0
            if draw < plan.fail_rate:
                return FaultAction(delay, plan.fail_status, plan.retry_after)
            return FaultAction(delay, drop=draw < plan.fail_rate + plan.drop_rate)

    def _take_delay(self) -> float:
        plan = self._plan
        if plan.delay_next is None:
            return plan.delay
        if plan.delay_next == 0:
            return 0.0
        plan.delay_next -= 1
        return plan.delay


class DroppedConnection(Response):
    """Starts an answer and ends before its body: the client sees the connection drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


def parse_faults(text: str | None) -> FaultPlan | None:
    """A :class:`FaultPlan` from JSON text (None passes through).

    Raises:
        InvalidInputError: The text is not a valid fault plan.
    """
    if text is None:
        return None
    try:
        return FaultPlan.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(plan)"
        raise InvalidInputError(f"invalid fault plan: {where}: {first['msg']}") from None
