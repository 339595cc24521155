"""Budgets: the limits in force for a run, which of them its usage has reached, and raising.

Plain functions over manifests; the budget gate itself (a pause for a person) is
``flows.gates.budget_gate``. Usage counts what the manifest records of its steps
(:class:`schemas.UsageTotals`): a call is counted once its step is recorded done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas import (
    BudgetKind,
    BudgetLimits,
    RunBudget,
    RunManifest,
    TaskSpec,
    UsageTotals,
)

from .usage import cost_text

BUDGET_GATE_PREFIX = "budget"


def resolve_budget(spec: TaskSpec, env: str, defaults: Mapping[str, BudgetLimits]) -> RunBudget:
    """The limits in force: the task's own, else the environment's default, else none."""
    env_limits = defaults.get(env, BudgetLimits())
    from_task = [k.value for k in BudgetKind if spec.budget.get(k) is not None]
    from_env = [k.value for k in BudgetKind if env_limits.get(k) is not None]
    parts = [f"env {env} sets {', '.join(from_env)}" if from_env else f"env {env}: no default"]
    if from_task:
        parts.append(f"task sets {', '.join(from_task)}")
    return RunBudget(limits=spec.budget.over(env_limits), source="; ".join(parts))


@dataclass(frozen=True)
class Reached:
    """One limit the run's usage has reached."""

    kind: BudgetKind
    limit: float
    used: float

    def describe(self) -> str:
        return f"{self.kind.value} budget reached: {_amount(self.kind, self.used)} used of " + (
            f"{_amount(self.kind, self.limit)}"
        )


def used(usage: UsageTotals, kind: BudgetKind) -> float | None:
    """What the run used of ``kind``; None for a cost that is unknown."""
    if kind is BudgetKind.TOKENS:
        return usage.tokens.total_tokens
    if kind is BudgetKind.AGENT_CALLS:
        return usage.agent_calls
    return usage.cost_usd


def reached_limits(manifest: RunManifest) -> list[Reached]:
    """The limits the run's usage has reached (used >= limit); empty when none.

    A cost limit with an unknown cost (a model without a price) counts as reached: the
    run cannot show that it stays inside it.
    """
    if manifest.budget is None:
        return []
    reached = []
    for kind in BudgetKind:
        limit = manifest.budget.limits.get(kind)
        if limit is None:
            continue
        amount = used(manifest.usage, kind)
        if amount is None or amount >= limit:
            reached.append(Reached(kind, limit, amount if amount is not None else float("inf")))
    return reached


def next_budget_gate_id(manifest: RunManifest) -> str:
    """``budget-<n>``: a run may reach its budget again after a raise."""
    count = sum(1 for a in manifest.approvals if a.id.startswith(f"{BUDGET_GATE_PREFIX}-"))
    return f"{BUDGET_GATE_PREFIX}-{count + 1}"


def suggested_limits(manifest: RunManifest, reached: list[Reached]) -> BudgetLimits:
    """What the gate's form offers as the new limits: one more of each reached limit on
    top of what is used (a person may enter any other value)."""
    assert manifest.budget is not None
    limits = manifest.budget.limits.model_dump()
    for r in reached:
        if r.used == float("inf"):
            continue
        raised = r.used + r.limit
        limits[r.kind.value] = (
            int(raised) if r.kind is not BudgetKind.COST_USD else round(raised, 4)
        )
    return BudgetLimits.model_validate(limits)


def raise_budget(manifest: RunManifest, limits: BudgetLimits, *, approver: str) -> None:
    """Record the new limits a person set at a budget gate (a mutation of the manifest)."""
    assert manifest.budget is not None
    manifest.budget = RunBudget(
        limits=limits, source=f"{manifest.budget.source}; raised by {approver}"
    )


def budget_summary(reached: list[Reached]) -> str:
    """One line for lists of waiting runs."""
    return "; ".join(r.describe() for r in reached)


def budget_markdown(label: str, manifest: RunManifest, reached: list[Reached]) -> str:
    """What the approver reads at a budget gate: what was reached, and the usage so far."""
    usage = manifest.usage
    lines = [
        f"### Budget reached: run `{label}`",
        "",
        *(f"- {r.describe()}" for r in reached),
        "",
        "| | tokens | agent calls | cost |",
        "|---|---|---|---|",
        f"| used | {usage.tokens.total_tokens} | {usage.agent_calls} | "
        f"{cost_text(usage.cost_usd)} |",
    ]
    if manifest.budget is not None:
        limits = manifest.budget.limits
        lines.append(
            f"| limit | {_limit(limits.tokens)} | {_limit(limits.agent_calls)} | "
            f"{_limit(limits.cost_usd, money=True)} |"
        )
    lines += [
        "",
        "Approve with new limits above what is used to go on; reject to stop the run "
        "(it ends rejected, with the budget as its reason).",
    ]
    return "\n".join(lines) + "\n"


def _amount(kind: BudgetKind, value: float) -> str:
    if value == float("inf"):
        return "an unknown amount"
    return cost_text(value) if kind is BudgetKind.COST_USD else str(int(value))


def _limit(value: float | None, *, money: bool = False) -> str:
    if value is None:
        return "none"
    return cost_text(value) if money else str(int(value))
