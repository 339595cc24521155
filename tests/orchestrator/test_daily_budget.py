"""Daily limits: the usage of every run of one task in one environment started the same
UTC day, and of every run one deployment started that day (whatever its task), summed
from the manifests under ``.runs/``."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta

import pytest

from orchestrator.budget import (
    BudgetScope,
    budget_markdown,
    budget_reached,
    daily_usage,
    day_usages,
    raise_budget,
    reached_limits,
    resolve_budget,
    suggested_limits,
)
from orchestrator.exceptions import InvalidInputError
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import (
    AgentRole,
    AgentStep,
    BudgetKind,
    BudgetLimits,
    DeploymentRef,
    RunBudget,
    RunManifest,
    TaskBudget,
    TokenUsage,
)
from tests.conftest import sample_manifest, sample_spec

DAY = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
NIGHTLY = DeploymentRef(id="6f0c1c7e-1111-4000-8000-000000000001", name="nightly/nightly")
PIPELINE = DeploymentRef(id="6f0c1c7e-2222-4000-8000-000000000002", name="pipeline/pipeline")


def run(
    workspace: Workspace,
    *,
    started: datetime = DAY,
    tokens: int = 1000,
    calls: int = 1,
    env: str = "dev",
    task_id: str = "add-text-helpers",
    daily: BudgetLimits | None = None,
    deployment: DeploymentRef | None = None,
    deployment_daily: BudgetLimits | None = None,
) -> RunManifest:
    """A run stored in ``workspace``: ``calls`` finished agent steps of ``tokens`` each."""
    manifest = sample_manifest(task_id).model_copy(
        update={"created_at": started, "updated_at": started, "env": env, "deployment": deployment}
    )
    manifest.budget = RunBudget(
        daily=daily or BudgetLimits(),
        deployment_daily=deployment_daily or BudgetLimits(),
        source="test",
    )
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
    assert reached_limits(second, days=[daily_usage(workspace.store, second)]) == []


def test_without_a_daily_limit_no_other_manifest_is_read(workspace: Workspace) -> None:
    first = run(workspace, calls=50)
    workspace.store.ref(first.task_id, first.run_id).manifest_path.write_text("{not json")
    current = run(workspace, calls=1)
    current.budget = RunBudget(limits=BudgetLimits(agent_calls=1), source="t")
    [reached] = budget_reached(workspace.store, current)
    assert (reached.scope, reached.used) == (BudgetScope.RUN, 1)


# -- a deployment's daily limits ------------------------------------------------------


def test_the_days_runs_of_a_deployment_are_summed_whatever_their_task(
    workspace: Workspace,
) -> None:
    run(workspace, tokens=1000, deployment=NIGHTLY)
    run(workspace, tokens=200, task_id="add-word-stats", env="prod", deployment=NIGHTLY)
    run(workspace, tokens=1, started=DAY - timedelta(hours=1), deployment=NIGHTLY)  # yesterday
    run(workspace, tokens=10, deployment=PIPELINE)  # another deployment
    run(workspace, tokens=100)  # no deployment: orchestrator run
    current = run(workspace, tokens=30, task_id="rename-word-count", deployment=NIGHTLY)

    day = daily_usage(workspace.store, current, scope=BudgetScope.DEPLOYMENT)
    assert (day.scope, day.day, day.runs) == (BudgetScope.DEPLOYMENT, date(2026, 12, 1), 3)
    assert day.usage.tokens.total_tokens == 1000 + 200 + 30
    assert day.usage.agent_calls == 3
    assert day.describe() == "3 runs of deployment nightly/nightly on 2026-12-01 (UTC)"
    # the task's own daily scope stays the task's runs in its environment
    task_day = daily_usage(workspace.store, current)
    assert (task_day.runs, task_day.usage.tokens.total_tokens) == (1, 30)


def test_a_manifest_last_written_before_the_day_is_not_read(workspace: Workspace) -> None:
    """Every write stamps the file at or after its run's start: a file older than the day
    is of an earlier run, and reading every old manifest before each call would cost."""
    stale = run(workspace, tokens=5000, deployment=NIGHTLY)
    counted = run(workspace, tokens=7, deployment=NIGHTLY)
    before = (DAY - timedelta(hours=2)).timestamp()
    os.utime(workspace.store.ref(stale.task_id, stale.run_id).manifest_path, (before, before))
    current = run(workspace, tokens=1, deployment=NIGHTLY)
    day = daily_usage(workspace.store, current, scope=BudgetScope.DEPLOYMENT)
    assert (day.runs, day.usage.tokens.total_tokens) == (2, counted.usage.tokens.total_tokens + 1)


def test_a_deployments_daily_limit_opens_its_own_gate_after_the_tasks(
    workspace: Workspace,
) -> None:
    limit = BudgetLimits(agent_calls=4)
    run(workspace, calls=3, task_id="add-word-stats", deployment=NIGHTLY, deployment_daily=limit)
    current = run(
        workspace,
        calls=1,
        deployment=NIGHTLY,
        daily=BudgetLimits(agent_calls=1),
        deployment_daily=limit,
    )
    task_reached, reached = budget_reached(workspace.store, current)
    assert task_reached.scope is BudgetScope.DAILY  # one scope per gate: the task's first
    assert (reached.kind, reached.scope, reached.used) == (
        BudgetKind.AGENT_CALLS,
        BudgetScope.DEPLOYMENT,
        4,
    )
    assert reached.describe() == (
        "deployment daily agent_calls budget reached: 4 used by 2 runs of deployment "
        "nightly/nightly on 2026-12-01 (UTC) of 4"
    )
    assert suggested_limits(current, [reached]) == BudgetLimits(agent_calls=8)
    day = daily_usage(workspace.store, current, scope=BudgetScope.DEPLOYMENT)
    shown = budget_markdown("t/r", current, [reached], daily=day)
    assert "Usage and limits of deployment daily (2 runs of deployment nightly/nightly" in shown
    assert "| used | 4000 | 4 | $0.0000 | 100s |" in shown
    assert "| limit | none | 4 | none | none |" in shown
    assert "Approve with new deployment daily limits" in shown

    raise_budget(current, BudgetLimits(agent_calls=8), approver="Ada", scope=BudgetScope.DEPLOYMENT)
    assert current.budget is not None
    assert current.budget.deployment_daily == BudgetLimits(agent_calls=8)
    assert current.budget.daily == BudgetLimits(agent_calls=1)  # the task's untouched
    assert current.budget.source == "test; deployment daily raised by Ada"
    assert [r.scope for r in budget_reached(workspace.store, current)] == [BudgetScope.DAILY]


def test_a_run_no_deployment_started_reads_no_deployments_runs(workspace: Workspace) -> None:
    run(workspace, calls=9, deployment=NIGHTLY)
    current = run(workspace, calls=1, deployment_daily=BudgetLimits(agent_calls=1))
    assert day_usages(workspace.store, current) == []
    assert budget_reached(workspace.store, current) == []


def test_a_deployments_limits_come_from_its_setting_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {"nightly/nightly": {"cost_usd": 50, "agent_calls": 200}}
    monkeypatch.setenv("ORCHESTRATOR_DEPLOYMENT_BUDGETS", json.dumps(limits))
    per_deployment = Settings().deployment_budgets
    assert per_deployment == {"nightly/nightly": BudgetLimits(cost_usd=50, agent_calls=200)}
    defaults = {"dev": TaskBudget(daily=BudgetLimits(tokens=9000))}

    budget = resolve_budget(
        sample_spec(), "dev", defaults, deployment=NIGHTLY, per_deployment=per_deployment
    )
    assert budget.deployment_daily == BudgetLimits(cost_usd=50, agent_calls=200)
    assert budget.daily == BudgetLimits(tokens=9000)
    assert budget.source == (
        "env dev sets daily tokens; deployment nightly/nightly sets daily cost_usd, agent_calls"
    )
    for deployment in (None, PIPELINE):  # not started by a deployment, or one not listed
        other = resolve_budget(
            sample_spec(), "dev", defaults, deployment=deployment, per_deployment=per_deployment
        )
        assert (other.deployment_daily, other.source) == (
            BudgetLimits(),
            "env dev sets daily tokens",
        )


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ('{"nightly": {"tokens": 5}}', "nightly"),  # not <flow>/<deployment>
        ('{"nightly/nightly": {"tokens": 0}}', "nightly/nightly.tokens"),
        ('{"nightly/nightly": {"daily": {"tokens": 5}}}', "nightly/nightly.daily"),
    ],
)
def test_a_bad_deployment_budget_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, where: str
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DEPLOYMENT_BUDGETS", value)
    with pytest.raises(InvalidInputError, match=rf"ORCHESTRATOR_DEPLOYMENT_BUDGETS \({where}"):
        Settings()
