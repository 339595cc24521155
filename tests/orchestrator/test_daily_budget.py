"""Daily limits: the usage of every run of one task in one environment started the same
UTC day, summed from the manifests under ``.runs/``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from orchestrator.budget import (
    BudgetScope,
    budget_markdown,
    budget_reached,
    daily_usage,
    raise_budget,
    reached_limits,
    suggested_limits,
)
from orchestrator.workspace import Workspace
from schemas import (
    AgentRole,
    AgentStep,
    BudgetKind,
    BudgetLimits,
    RunBudget,
    RunManifest,
    TokenUsage,
)
from tests.conftest import sample_manifest

DAY = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)


def run(
    workspace: Workspace,
    *,
    started: datetime = DAY,
    tokens: int = 1000,
    calls: int = 1,
    env: str = "dev",
    task_id: str = "add-text-helpers",
    daily: BudgetLimits | None = None,
) -> RunManifest:
    """A run stored in ``workspace``: ``calls`` finished agent steps of ``tokens`` each."""
    manifest = sample_manifest(task_id).model_copy(
        update={"created_at": started, "updated_at": started, "env": env}
    )
    manifest.budget = RunBudget(daily=daily or BudgetLimits(), source="test")
    manifest.finished_at = started + timedelta(seconds=50)
    for n in range(calls):
        manifest.phases.build.steps.append(
            AgentStep(
                id=f"build-{n}",
                role=AgentRole.BUILDER,
                model="replay",
                tokens=TokenUsage(input_tokens=tokens, total_tokens=tokens),
                cost_usd=0.0,
            )
        )
    manifest = RunManifest.model_validate(manifest.model_dump())
    workspace.store.create(manifest, actor="test")
    return manifest


def test_the_days_runs_of_the_task_in_its_environment_are_summed(workspace: Workspace) -> None:
    run(workspace, tokens=1000, calls=2, started=DAY)
    run(workspace, tokens=1, started=DAY - timedelta(hours=1))  # the day before (UTC)
    run(workspace, tokens=10, env="prod")  # another environment
    run(workspace, tokens=100, task_id="add-word-stats")  # another task
    late = run(workspace, tokens=300, started=DAY.replace(hour=23, minute=59))

    day = daily_usage(workspace.store, late, now=DAY + timedelta(days=2))
    assert (day.day, day.runs) == (date(2026, 12, 1), 2)
    assert day.usage.tokens.total_tokens == 2 * 1000 + 300
    assert day.usage.agent_calls == 3
    assert day.wall_seconds == 2 * 50
    assert day.describe() == "2 runs of add-text-helpers in dev on 2026-12-01 (UTC)"


def test_the_run_itself_counts_as_given_and_an_unreadable_manifest_is_left_out(
    workspace: Workspace,
) -> None:
    run(workspace, tokens=1000)
    current = run(workspace, tokens=0, calls=0)
    broken = run(workspace, tokens=5000)
    workspace.store.ref(broken.task_id, broken.run_id).manifest_path.write_text("{not json")
    # newer than its file: a step recorded since
    current.phases.plan.steps.append(
        AgentStep(
            id="plan",
            role=AgentRole.PLANNER,
            model="replay",
            tokens=TokenUsage(input_tokens=7, total_tokens=7),
        )
    )
    current = RunManifest.model_validate(current.model_dump())
    day = daily_usage(workspace.store, current)
    assert (day.runs, day.usage.tokens.total_tokens) == (2, 1007)


def test_a_daily_limit_is_reached_by_the_days_runs_together(workspace: Workspace) -> None:
    daily = BudgetLimits(agent_calls=6, tokens=10**6)
    run(workspace, calls=5, daily=daily)
    second = run(workspace, calls=0, daily=daily)
    assert budget_reached(workspace.store, second) == []  # 5 of 6: below

    second.phases.plan.steps.append(AgentStep(id="plan", role=AgentRole.PLANNER, model="replay"))
    second = RunManifest.model_validate(second.model_dump())
    [reached] = budget_reached(workspace.store, second)
    assert (reached.kind, reached.scope, reached.used) == (
        BudgetKind.AGENT_CALLS,
        BudgetScope.DAILY,
        6,
    )
    assert reached.describe() == (
        "daily agent_calls budget reached: 6 used by 2 runs of add-text-helpers in dev on "
        "2026-12-01 (UTC) of 6"
    )
    # the gate offers new daily limits and shows the day's usage; the run's own are apart
    assert suggested_limits(second, [reached]) == BudgetLimits(agent_calls=12, tokens=10**6)
    shown = budget_markdown("t/r", second, [reached], daily=daily_usage(workspace.store, second))
    assert "Usage and limits of daily (2 runs of add-text-helpers" in shown
    assert "| used | 5000 | 6 | $0.0000 | 100s |" in shown
    assert "| limit | 1000000 | 6 | none | none |" in shown
    raise_budget(second, BudgetLimits(agent_calls=12), approver="Ada", scope=BudgetScope.DAILY)
    assert second.budget is not None
    assert (second.budget.limits, second.budget.daily) == (
        BudgetLimits(),
        BudgetLimits(agent_calls=12),
    )
    assert second.budget.source == "test; daily raised by Ada"
    assert reached_limits(second, daily=daily_usage(workspace.store, second)) == []


def test_without_a_daily_limit_no_other_manifest_is_read(workspace: Workspace) -> None:
    first = run(workspace, calls=50)
    workspace.store.ref(first.task_id, first.run_id).manifest_path.write_text("{not json")
    current = run(workspace, calls=1)
    current.budget = RunBudget(limits=BudgetLimits(agent_calls=1), source="t")
    [reached] = budget_reached(workspace.store, current)
    assert (reached.scope, reached.used) == (BudgetScope.RUN, 1)
