"""A daily budget over the runs of one task in one environment: the first run of the day
completes inside it, the second pauses at a budget gate that says it is the daily limit;
raised, it completes.

Real parts as in ``test_budget``, in an ORCHESTRATOR_HOME of their own (the day's other
runs of the task in the session's home would count too). Both runs start on one pinned
UTC day, so they never straddle midnight (their clocks start at :data:`DAY`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.budget import run_day
from schemas import Channel, Decision, RunStatus, StepStatus

from .conftest import GateStack

pytestmark = [pytest.mark.integration]

DAY = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
"""Where each run's clock starts: both runs start on this UTC day, whenever the test runs."""


@pytest.fixture
def day_stack(gate_stack: GateStack, tmp_path: Path) -> Iterator[GateStack]:
    """The session's servers and blocks, with an empty home; its runs killed at the end."""
    stack = gate_stack.with_home(tmp_path)
    try:
        yield stack
    finally:
        stack.kill_runs()


def test_the_second_run_of_the_day_pauses_at_the_daily_limit(day_stack: GateStack) -> None:
    first = day_stack.start("budget-daily.yaml", "daily-first", clock=DAY)
    assert first.wait() == 0, first.output()
    done = day_stack.manifest(first.run_id)
    assert (done.status, done.usage.agent_calls) == (RunStatus.SUCCEEDED, 5)
    assert done.approvals[-1].id == "handover"  # 5 of 6: no budget gate

    second = day_stack.start("budget-daily.yaml", "daily-second", clock=DAY)
    waiting = day_stack.wait_for_gate(second, "budget-1")
    paused = day_stack.manifest(second.run_id)
    assert run_day(paused) == run_day(done) == DAY.date()
    day = DAY.date().isoformat()
    reached = (
        f"daily agent_calls budget reached: 6 used by 2 runs of add-text-helpers in dev on "
        f"{day} (UTC) of 6"
    )
    assert waiting.notice.summary == reached
    plan = paused.step("plan")
    assert plan is not None and plan.status is StepStatus.SUCCEEDED
    assert paused.phases.build.steps == []  # no call after the one that reached it
    approval = paused.approval("budget-1")
    assert approval is not None and "Approve with new daily limits" in approval.shown

    approved = day_stack.cli("approve", second.run_id, "--approver", "Grace", "--reason", "ok")
    assert approved.returncode == 0, approved.stderr
    assert second.wait() == 0, second.output()
    manifest = day_stack.manifest(second.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.budget is not None
    assert manifest.budget.daily.agent_calls == 12  # the suggestion: 6 more on top of 6
    assert manifest.budget.limits.agent_calls is None  # the run's own limits untouched
    assert "daily raised by Grace (cli) at budget-1" in manifest.budget.source
    gate = manifest.approval("budget-1")
    assert gate is not None and (gate.decision, gate.channel) == (Decision.APPROVE, Channel.CLI)
    shown = day_stack.cli("show", second.run_id).stdout
    assert "budget: daily agent_calls 12 (" in shown
    assert (
        "in 10 agent calls" in shown and f"by 2 runs of add-text-helpers in dev on {day}" in shown
    )
