"""Budgets: how much a run may spend (tokens, cost, agent calls, wall time) before a person
decides, how much the runs of one task may spend in one UTC day, and how much the runs
one Prefect deployment starts may spend in one UTC day."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ._base import StrictModel


class BudgetKind(StrEnum):
    TOKENS = "tokens"
    COST_USD = "cost_usd"
    AGENT_CALLS = "agent_calls"
    WALL_SECONDS = "wall_seconds"


class BudgetScope(StrEnum):
    """What a limit counts: one run, every run of its task and environment in a UTC day,
    or every run its deployment started in a UTC day (whatever their task)."""

    RUN = "run"
    DAILY = "daily"
    DEPLOYMENT = "deployment"

    @property
    def prefix(self) -> str:
        """How a limit of this scope is named: ``daily tokens``, ``deployment daily tokens``."""
        return {"run": "", "daily": "daily ", "deployment": "deployment daily "}[self.value]


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
    wall_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Seconds from the run's start, without the time it waited for a person "
        "at a gate.",
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

    @property
    def any(self) -> bool:
        return any(self.get(k) is not None for k in BudgetKind)


class TaskBudget(BudgetLimits):
    """A task's (or an environment's default) limits: per run, and per UTC day."""

    daily: BudgetLimits = Field(
        default_factory=BudgetLimits,
        description="Limits over every run of the task in its environment started the same "
        "UTC day (this run included); reaching one pauses the run at a budget gate too.",
    )

    def run_limits(self) -> BudgetLimits:
        return BudgetLimits.model_validate(self.model_dump(exclude={"daily"}))


class RunBudget(StrictModel):
    """The limits in force for a run, and where they came from (raised at budget gates)."""

    limits: BudgetLimits = Field(default_factory=BudgetLimits)
    daily: BudgetLimits = Field(
        default_factory=BudgetLimits,
        description="Limits over the runs of this task and environment started the run's "
        "UTC day (the usage of all of them summed).",
    )
    deployment_daily: BudgetLimits = Field(
        default_factory=BudgetLimits,
        description="Limits over every run the run's Prefect deployment started the run's "
        "UTC day, whatever their task or environment (ORCHESTRATOR_DEPLOYMENT_BUDGETS); none "
        "for a run no deployment started.",
    )
    source: str = Field(
        description="Where the limits came from, e.g. 'env prod; task sets tokens'."
    )

    def of(self, scope: BudgetScope) -> BudgetLimits:
        if scope is BudgetScope.DEPLOYMENT:
            return self.deployment_daily
        return self.daily if scope is BudgetScope.DAILY else self.limits
