"""A budget during a turn: what a call may still spend, and an interrupted attempt's record."""

from __future__ import annotations

from orchestrator.budget import DailyUsage
from orchestrator.lifecycle import RunHandle, begin_step
from orchestrator.turn_budget import Allowance, allowance, record_interrupted
from orchestrator.workspace import Workspace
from schemas import (
    AgentRole,
    AgentStep,
    BudgetLimits,
    BudgetScope,
    PhaseName,
    RunBudget,
    RunManifest,
    StepStatus,
    TokenUsage,
    UsageTotals,
)
from tests.conftest import sample_manifest


def used(tokens: int) -> TokenUsage:
    return TokenUsage(input_tokens=tokens, total_tokens=tokens)


def with_budget(manifest: RunManifest, **limits: object) -> RunManifest:
    daily = limits.pop("daily", {})
    deployment_daily = limits.pop("deployment_daily", {})
    manifest.budget = RunBudget(
        limits=BudgetLimits.model_validate(limits),
        daily=BudgetLimits.model_validate(daily),
        deployment_daily=BudgetLimits.model_validate(deployment_daily),
        source="t",
    )
    manifest.phases.plan.steps.append(
        AgentStep(id="plan", role=AgentRole.PLANNER, model="replay", tokens=used(2560))
    )
    return RunManifest.model_validate(manifest.model_dump())


def test_the_allowance_is_the_least_left_of_the_runs_and_the_days_limits() -> None:
    manifest = with_budget(sample_manifest(), tokens=3000, daily={"tokens": 10_000})
    assert allowance(manifest) == Allowance(tokens=440)
    day = DailyUsage(
        BudgetScope.DAILY,
        "t in dev",
        manifest.created_at.date(),
        3,
        UsageTotals(tokens=used(9800)),
        0,
    )
    assert allowance(manifest, [day]) == Allowance(tokens=200)
    assert allowance(with_budget(sample_manifest(), agent_calls=3)) == Allowance()
    assert not Allowance().watched  # no token or cost limit: nothing to watch in a turn
    assert allowance(sample_manifest()) == Allowance()


def test_the_deployments_daily_limits_count_in_the_allowance_too() -> None:
    manifest = with_budget(
        sample_manifest(), daily={"tokens": 10_000}, deployment_daily={"tokens": 50_000}
    )
    today = manifest.created_at.date()
    task_day = DailyUsage(BudgetScope.DAILY, "t in dev", today, 1, UsageTotals(), 0)
    deployment_day = DailyUsage(
        BudgetScope.DEPLOYMENT, "deployment n/n", today, 9, UsageTotals(tokens=used(49_900)), 0
    )
    assert allowance(manifest, [task_day]) == Allowance(tokens=10_000)
    assert allowance(manifest, [task_day, deployment_day]) == Allowance(tokens=100)


def test_a_call_reaches_its_allowance_at_or_above_it() -> None:
    tokens = Allowance(tokens=440)
    assert tokens.reached(used(439), 0.0) is None
    assert tokens.reached(used(1280), 0.0) == "1280 tokens used in the turn, 440 were left"
    cost = Allowance(cost_usd=0.5)
    assert cost.reached(used(10), 0.49) is None
    assert cost.reached(used(10), 0.5) == "$0.5000 in the turn, $0.5000 was left"
    assert cost.reached(used(10), None) == "an unknown cost in the turn, $0.5000 was left"


def test_an_interrupted_attempt_is_recorded_apart_and_still_counts(workspace: Workspace) -> None:
    manifest = with_budget(sample_manifest(), tokens=3000)
    workspace.store.create(manifest, actor="test")
    handle = RunHandle(workspace, manifest.task_id, manifest.run_id)
    begin_step(handle, PhaseName.BUILD, "build-a", AgentRole.BUILDER)

    record_id = record_interrupted(
        handle, "build-a", tokens=used(1280), model="replay", reason="1280 tokens ..."
    )

    after = handle.read()
    assert record_id == "build-a-interrupted-1"
    [attempt, step] = after.phases.build.steps
    assert (attempt.id, attempt.status, attempt.tokens, attempt.model, attempt.cost_usd) == (
        "build-a-interrupted-1",
        StepStatus.FAILED,
        used(1280),
        "replay",
        0.0,
    )
    assert attempt.error == "interrupted by the budget: 1280 tokens ..."
    assert (step.id, step.status, step.attempt) == ("build-a", StepStatus.PENDING, 1)
    assert after.usage.tokens.total_tokens == 2560 + 1280
    assert after.usage.agent_calls == 2
    # redone: a new attempt starts from nothing, the interrupted one keeps counting
    begin_step(handle, PhaseName.BUILD, "build-a", AgentRole.BUILDER)
    redone = handle.read()
    assert redone.step("build-a").attempt == 2  # type: ignore[union-attr]
    assert redone.usage.tokens.total_tokens == 2560 + 1280
