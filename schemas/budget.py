"""Budgets: how much a run may spend (tokens, cost, agent calls) before a person decides."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ._base import StrictModel


class BudgetKind(StrEnum):
    TOKENS = "tokens"
    COST_USD = "cost_usd"
    AGENT_CALLS = "agent_calls"


class BudgetLimits(StrictModel):
    """Limits of one run; an unset limit takes the environment's default, else no limit.

    Reaching one (usage at or above it) pauses the run at a budget gate: a person raises
    the limit or stops the run.
    """

    tokens: int | None = Field(
        default=None, ge=1, description="Total tokens (input + output) of every agent call."
    )
    cost_usd: float | None = Field(
        default=None, gt=0, description="Cost in USD from the price table."
    )
    agent_calls: int | None = Field(
        default=None, ge=1, description="Agent calls (one per agent step attempt)."
    )

    def get(self, kind: BudgetKind) -> float | None:
        value: int | float | None = getattr(self, kind.value)
        return value

    def over(self, defaults: BudgetLimits) -> BudgetLimits:
        """These limits, with ``defaults`` for the unset ones."""
        return BudgetLimits.model_validate(
            {
                k.value: self.get(k) if self.get(k) is not None else defaults.get(k)
                for k in BudgetKind
            }
        )


class RunBudget(StrictModel):
    """The limits in force for a run, and where they came from (raised at budget gates)."""

    limits: BudgetLimits = Field(default_factory=BudgetLimits)
    source: str = Field(
        description="Where the limits came from, e.g. 'env prod; task sets tokens'."
    )
