"""Budget limits: where they come from, when usage reaches them, what a gate suggests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.budget import (
    budget_markdown,
    next_budget_gate_id,
    raise_budget,
    reached_limits,
    resolve_budget,
    suggested_limits,
    wall_seconds,
)
from orchestrator.exceptions import InvalidInputError
from orchestrator.settings import Settings
from schemas import (
    AgentRole,
    AgentStep,
    Approval,
    BudgetKind,
    BudgetLimits,
    Gate,
    RunBudget,
    RunManifest,
    TaskBudget,
    TaskSpec,
    TokenUsage,
    utc_now,
)
from tests.conftest import sample_manifest, sample_spec


def spec_with(**budget: object) -> TaskSpec:
    return sample_spec().model_copy(update={"budget": TaskBudget.model_validate(budget)})


def test_the_task_wins_over_the_environment_default_field_by_field() -> None:
    defaults = {"prod": TaskBudget(tokens=1_000_000, agent_calls=20)}
    budget = resolve_budget(spec_with(tokens=5000), "prod", defaults)
    assert budget.limits == BudgetLimits(tokens=5000, agent_calls=20)
    assert budget.source == "env prod sets tokens, agent_calls; task sets tokens"
    assert resolve_budget(spec_with(), "dev", defaults).limits == BudgetLimits()


def test_environment_defaults_come_from_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BUDGETS", '{"prod": {"tokens": 2000, "cost_usd": 1.5}}')
    assert Settings().budgets == {"prod": TaskBudget(tokens=2000, cost_usd=1.5)}


def test_a_bad_budget_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_BUDGETS", '{"prod": {"tokens": 0}}')
    with pytest.raises(InvalidInputError, match=r"ORCHESTRATOR_BUDGETS \(prod\.tokens: "):
        Settings()


def test_a_task_budget_is_validated_with_the_field_named() -> None:
    with pytest.raises(ValueError, match=r"budget\.tokens"):
        TaskSpec.model_validate({**sample_spec().model_dump(), "budget": {"tokens": 0}})


def spent(manifest: RunManifest, total: int, calls: int = 1) -> RunManifest:
    for n in range(calls):
        manifest.phases.build.steps.append(
            AgentStep(
                id=f"build-{n}",
                role=AgentRole.BUILDER,
                model="gpt-5",
                tokens=TokenUsage(input_tokens=total // calls, total_tokens=total // calls),
                cost_usd=0.01,
            )
        )
    return RunManifest.model_validate(manifest.model_dump())


def test_a_limit_is_reached_at_or_above_it_and_not_below() -> None:
    manifest = sample_manifest()
    manifest.budget = RunBudget(limits=BudgetLimits(tokens=1000, agent_calls=3), source="t")
    assert reached_limits(spent(manifest.model_copy(deep=True), 999)) == []
    [reached] = reached_limits(spent(manifest.model_copy(deep=True), 1000))
    assert (reached.kind, reached.limit, reached.used) == (BudgetKind.TOKENS, 1000, 1000)
    assert reached.describe() == "tokens budget reached: 1000 used of 1000"
    both = reached_limits(spent(manifest.model_copy(deep=True), 3000, calls=3))
    assert [r.kind for r in both] == [BudgetKind.TOKENS, BudgetKind.AGENT_CALLS]
    assert reached_limits(spent(sample_manifest(), 10**9)) == []  # no budget, no limit


def test_an_unknown_cost_reaches_a_cost_limit() -> None:
    manifest = sample_manifest()
    manifest.budget = RunBudget(limits=BudgetLimits(cost_usd=5), source="t")
    manifest.phases.plan.steps.append(
        AgentStep(id="plan", role=AgentRole.PLANNER, model="mystery", cost_usd=None)
    )
    manifest = RunManifest.model_validate(manifest.model_dump())
    [reached] = reached_limits(manifest)
    assert reached.describe() == "cost_usd budget reached: an unknown amount used of $5.0000"
    assert suggested_limits(manifest, [reached]).cost_usd == 5  # nothing to add it to


def test_the_gate_suggests_one_more_limit_on_top_of_what_is_used_and_counts_gates() -> None:
    manifest = sample_manifest()
    manifest.budget = RunBudget(limits=BudgetLimits(tokens=1000, agent_calls=9), source="t")
    manifest = spent(manifest, 1500)
    reached = reached_limits(manifest)
    assert suggested_limits(manifest, reached) == BudgetLimits(tokens=2500, agent_calls=9)
    shown = budget_markdown("t/r", manifest, reached)
    assert "tokens budget reached: 1500 used of 1000" in shown
    assert "| used | 1500 | 1 | $0.0100 | " in shown
    assert "| limit | 1000 | 9 | none | none |" in shown

    assert next_budget_gate_id(manifest) == "budget-1"
    manifest.approvals.append(
        Approval(
            id="budget-1",
            gate=Gate.BUDGET,
            shown=shown,
            shown_sha256="0" * 64,
            requested_at=utc_now(),
            timeout_seconds=60,
        )
    )
    assert next_budget_gate_id(manifest) == "budget-2"
    raise_budget(manifest, BudgetLimits(tokens=5000), approver="Ada (cli) at budget-1")
    assert manifest.budget.limits == BudgetLimits(tokens=5000)
    assert manifest.budget.source == "t; raised by Ada (cli) at budget-1"
    assert json.loads(manifest.model_dump_json())["budget"]["limits"]["tokens"] == 5000


# -- wall time ---------------------------------------------------------------------

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def gate(approval_id: str, asked: float, decided: float | None) -> Approval:
    return Approval(
        id=approval_id,
        gate=Gate.BUDGET,
        shown="x",
        shown_sha256="0" * 64,
        requested_at=at(asked),
        timeout_seconds=600,
        decided_at=None if decided is None else at(decided),
    )


def started_at_t0(**budget: int) -> RunManifest:
    manifest = sample_manifest().model_copy(update={"created_at": T0, "updated_at": T0})
    manifest.budget = RunBudget(limits=BudgetLimits.model_validate(budget), source="t")
    return manifest


def test_wall_time_leaves_out_the_waits_for_a_person_counted_once() -> None:
    manifest = started_at_t0(wall_seconds=100)
    assert wall_seconds(manifest, now=at(90)) == 90
    # a plan gate waited 30 s; two builders' command gates overlapped (10 s of 60..75)
    manifest.approvals += [gate("plan", 10, 40), gate("c-1", 60, 70), gate("c-2", 65, 75)]
    assert wall_seconds(manifest, now=at(90)) == 90 - 30 - 15
    # a gate still waiting is a wait until now (or until the run ended)
    manifest.approvals.append(gate("budget-1", 80, None))
    assert wall_seconds(manifest, now=at(500)) == 80 - 30 - 15
    manifest.finished_at, manifest.approvals[-1].decided_at = at(120), at(100)
    assert wall_seconds(manifest, now=at(500)) == 120 - 30 - 15 - 20


def test_a_wall_time_limit_is_reached_and_its_suggestion_adds_one_more() -> None:
    manifest = started_at_t0(wall_seconds=60, tokens=10**6)
    manifest.approvals.append(gate("plan", 0, 100))  # a person took 100 s: not counted
    assert reached_limits(manifest, now=at(159)) == []
    [reached] = reached_limits(manifest, now=at(161))
    assert (reached.kind, reached.used) == (BudgetKind.WALL_SECONDS, 61)
    assert reached.describe() == "wall_seconds budget reached: 61s used of 60s"
    assert suggested_limits(manifest, [reached]) == BudgetLimits(wall_seconds=121, tokens=10**6)
    shown = budget_markdown("t/r", manifest, [reached])
    assert "| limit | 1000000 | none | none | 60s |" in shown


def test_daily_limits_resolve_task_over_environment_and_are_named_in_the_source() -> None:
    defaults = {"prod": TaskBudget(wall_seconds=600, daily={"tokens": 10**6, "agent_calls": 9})}
    budget = resolve_budget(spec_with(daily={"agent_calls": 4}), "prod", defaults)
    assert budget.limits == BudgetLimits(wall_seconds=600)
    assert budget.daily == BudgetLimits(tokens=10**6, agent_calls=4)
    assert budget.source == (
        "env prod sets wall_seconds, daily tokens, daily agent_calls; task sets daily agent_calls"
    )
    with pytest.raises(ValueError, match=r"budget\.daily\.wall_seconds"):
        TaskSpec.model_validate(
            {**sample_spec().model_dump(), "budget": {"daily": {"wall_seconds": 0}}}
        )
