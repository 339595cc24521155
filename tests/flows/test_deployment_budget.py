"""A deployment's daily budget, over its runs of every task: the first run of the day
spends it, and the second, of another task, pauses at the budget gate before any agent
call of its own.

Both are flow runs of one deployment of ``pipeline`` on the test harness, run in this
process (as a worker runs them), with its clock pinned to :data:`DAY` so they start on
one UTC day. No person decides: each budget gate expires after its 2 s, which ends the
run ``expired`` with the budget as its reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import yaml

from flows.pipeline import pipeline
from orchestrator.budget import run_day
from schemas import BudgetLimits, Decision, DeploymentRef, RunManifest, RunStatus
from tests.conftest import EXAMPLES
from tests.helpers.deployments import deployment_id, run_deployment_here
from tests.helpers.pinned_cli import pinned_clock_at

from .conftest import ORCHESTRATOR, Stack

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

DAY = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DEPLOYMENT = "daily-budget"


@pytest.fixture
def pinned_day() -> Iterator[datetime]:
    with pinned_clock_at(DAY) as start:
        yield start


def task_copy(folder: Path, name: str) -> Path:
    """The example task ``name``, its budget gate expiring in 2 s."""
    spec = yaml.safe_load((EXAMPLES / "tasks" / name).read_text())
    spec["approvals"]["timeouts"] = {"budget": 2}
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


async def run_of_deployment(stack: Stack, task: Path, run_id: str) -> tuple[RunManifest, str]:
    parameters = {"task_file": str(task), "repo": str(stack.repo), "run_id": run_id}
    state = await run_deployment_here(pipeline, DEPLOYMENT, {**parameters, "cloud_block": ""})
    return stack.workspace.store.read(task.stem, run_id), str(state.name)


async def test_the_second_run_of_a_deployment_pauses_at_the_budget_the_first_spent(
    stack: Stack, pinned_day: datetime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"pipeline/{DEPLOYMENT}"
    monkeypatch.setenv("ORCHESTRATOR_DEPLOYMENT_BUDGETS", json.dumps({name: {"agent_calls": 1}}))
    recorded = DeploymentRef(id=await deployment_id(pipeline, DEPLOYMENT), name=name)
    day = f"on {pinned_day.date().isoformat()} (UTC)"

    first, _ = await run_of_deployment(stack, task_copy(tmp_path, "add-text-helpers.yaml"), "one")
    assert first.deployment == recorded
    assert first.budget is not None and first.budget.deployment_daily == BudgetLimits(agent_calls=1)
    assert f"deployment {name} sets daily agent_calls" in first.budget.source
    assert first.usage.agent_calls == 1  # the planner's call spent the day's budget
    assert first.status_reason is not None and first.status_reason.startswith(
        f"deployment daily agent_calls budget reached: 1 used by 1 run of deployment {name} "
        f"{day} of 1"
    )

    second, state = await run_of_deployment(
        stack, task_copy(tmp_path, "add-word-stats.yaml"), "two"
    )
    assert (second.task_id, second.deployment, run_day(second)) == (
        "add-word-stats",
        recorded,
        run_day(first),
    )
    assert (second.status, state) == (RunStatus.EXPIRED, "Expired")
    assert second.usage.agent_calls == 0  # paused before its first call, the planner's
    assert second.phases.build.steps == []
    gate = second.approval("budget-1")
    assert gate is not None and gate.decision is Decision.EXPIRED
    assert f"1 used by 2 runs of deployment {name} {day}" in gate.shown
    assert "Approve with new deployment daily limits" in gate.shown

    home = str(stack.workspace.settings.home)
    with anyio.fail_after(60):
        show = await anyio.run_process(
            [ORCHESTRATOR, "show", "two"],
            env={**os.environ, "ORCHESTRATOR_HOME": home, "COLUMNS": "200"},
        )
    shown = show.stdout.decode()
    assert f"deployment: {name} ({recorded.id})" in shown
    assert "budget: deployment daily agent_calls 1 (" in shown
    assert f"in 1 agent calls; cost $0.0000 by 2 runs of deployment {name} {day}" in shown
