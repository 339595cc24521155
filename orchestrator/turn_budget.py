"""A budget during a turn: what an agent call may still spend, and the record of a call
stopped because it reached that.

The budget gate checks usage before and after each call (:mod:`orchestrator.budget`);
while a call runs, its token events are compared with :class:`Allowance` (what is left of
the run's and the day's token and cost limits when the call starts). A call that reaches
it is interrupted, and its attempt is recorded by :func:`record_interrupted` as a step of
its own (``<step>-interrupted-<attempt>``, failed, with the tokens it used), so the
usage keeps counting them when the step is redone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from schemas import (
    AgentStep,
    BudgetKind,
    PhaseName,
    RunManifest,
    StepStatus,
    TokenUsage,
    utc_now,
)

from .budget import UNKNOWN, DailyUsage, day_usages, used
from .lifecycle import RunHandle
from .usage import call_cost, load_price_table

INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Allowance:
    """What one call may spend before it reaches a limit: the least of what is left."""

    tokens: float | None = None
    cost_usd: float | None = None

    @property
    def watched(self) -> bool:
        return self.tokens is not None or self.cost_usd is not None

    def reached(self, tokens: TokenUsage, cost_usd: float | None) -> str | None:
        """Why a call that used ``tokens`` (costing ``cost_usd``) is over it; else None."""
        if self.tokens is not None and tokens.total_tokens >= self.tokens:
            return f"{tokens.total_tokens} tokens used in the turn, {int(self.tokens)} were left"
        if self.cost_usd is not None and (cost_usd is None or cost_usd >= self.cost_usd):
            spent = "an unknown cost" if cost_usd is None else f"${cost_usd:.4f}"
            return f"{spent} in the turn, ${self.cost_usd:.4f} was left"
        return None


def allowance(manifest: RunManifest, days: Iterable[DailyUsage] = ()) -> Allowance:
    """What is left of the run's token and cost limits (and of each day scope's in
    ``days``: the task's daily ones, the deployment's)."""
    if manifest.budget is None:
        return Allowance()
    left: dict[BudgetKind, list[float]] = {BudgetKind.TOKENS: [], BudgetKind.COST_USD: []}
    scopes = [(manifest.budget.limits, manifest.usage)]
    scopes += [(manifest.budget.of(day.scope), day.usage) for day in days]
    for limits, usage in scopes:
        for kind, amounts in left.items():
            limit = limits.get(kind)
            if limit is not None:
                amounts.append(max(0.0, limit - used(usage, kind)))
    tokens, cost = (min(v) if v else None for v in left.values())
    return Allowance(tokens=tokens, cost_usd=None if cost == UNKNOWN else cost)


def pricer(handle: RunHandle, model: str | None) -> Callable[[TokenUsage], float | None]:
    """The cost of tokens of ``model`` by the run's price table (read once, here)."""
    return partial(call_cost, load_price_table(handle.workspace.settings.prices_file), model)


def interrupted_step_id(step_id: str, attempt: int) -> str:
    return f"{step_id}-{INTERRUPTED}-{attempt}"


def call_allowance(handle: RunHandle) -> Allowance:
    """What the next agent call of ``handle``'s run may spend (the day's runs counted when
    the run has a daily limit, of its task or its deployment)."""
    manifest = handle.read()
    return allowance(manifest, day_usages(handle.workspace.store, manifest))


def record_interrupted(
    handle: RunHandle, step_id: str, *, tokens: TokenUsage, model: str | None, reason: str
) -> str:
    """Record the running attempt of ``step_id`` as interrupted by the budget: a failed
    step of its own with the tokens and cost it used; the step itself goes back to
    pending, to be redone. Returns the id of the interrupted attempt's record."""
    cost = pricer(handle, model)(tokens)
    error = f"interrupted by the budget: {reason}"

    def record(m: RunManifest) -> None:
        phase = next(p for p in (m.phases.get(n) for n in PhaseName) if _has(p.steps, step_id))
        step = next(s for s in phase.steps if s.id == step_id)
        attempt = AgentStep.model_validate(
            {
                **step.model_dump(),
                "id": interrupted_step_id(step_id, step.attempt),
                "status": StepStatus.FAILED,
                "tokens": tokens,
                "model": model,
                "cost_usd": cost,
                "error": error,
                "finished_at": utc_now(),
            }
        )
        phase.steps.insert(phase.steps.index(step), attempt)
        step.status, step.error = StepStatus.PENDING, error

    manifest = handle.update(record, event="step.interrupted", step=step_id, reason=reason)
    step = manifest.step(step_id)
    assert step is not None
    return interrupted_step_id(step_id, step.attempt)


def _has(steps: list[AgentStep], step_id: str) -> bool:
    return any(s.id == step_id for s in steps)
