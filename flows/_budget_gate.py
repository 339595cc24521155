"""Budget gates: while a run's usage reaches one of its limits, a person decides whether it
goes on (with raised limits) or stops.

A budget gate is an approval gate (:func:`flows.gates.approval_gate`) of its own form,
:class:`BudgetForm`, which carries the new limits; the limits, the usage and what a gate
shows are plain functions over manifests in :mod:`orchestrator.budget`.
"""

from __future__ import annotations

from typing import Any

import anyio
from prefect.input.actions import aread_flow_run_input
from pydantic import Field, ValidationError

from orchestrator.approvals import stopped_at_gate
from orchestrator.budget import (
    DAY_SCOPES,
    Reached,
    budget_markdown,
    budget_reached,
    budget_summary,
    daily_usage,
    next_budget_gate_id,
    raise_budget,
    suggested_limits,
)
from orchestrator.exceptions import BudgetStoppedError
from orchestrator.lifecycle import RunHandle, finish_run
from schemas import BudgetLimits, Decision, Gate, GateMode, RunManifest, RunStatus

from .gates import ApprovalForm, approval_gate, current_flow_run_id


class BudgetForm(ApprovalForm):
    """The form at a budget gate: approve with new limits to go on, reject to stop the run.

    The limits start as the gate's suggestion (one more of each reached limit on top of
    what is used); an approval from the CLI takes the suggestion. At a gate of a daily
    limit (the task's or the deployment's) they are the run's new limits of that scope.
    """

    tokens: int | None = Field(
        default=None, ge=1, title="Token limit", description="New limit of total tokens."
    )
    cost_usd: float | None = Field(
        default=None, gt=0, title="Cost limit (USD)", description="New limit of the cost."
    )
    agent_calls: int | None = Field(
        default=None, ge=1, title="Agent call limit", description="New limit of agent calls."
    )
    wall_seconds: int | None = Field(
        default=None, ge=1, title="Wall time limit (s)", description="New limit of wall time."
    )


async def enforce_budget(handle: RunHandle, lock: anyio.Lock) -> None:
    """Before and after every agent call: while the run's usage (or the day's, for a daily
    limit of its task or of its deployment) reaches one of its limits, a person decides at
    a budget gate (raise the limits, or stop the run).

    ``lock`` is the phase flow run's own: one pause at a time in one flow run, and a
    builder that waited behind another's gate sees the limits it raised.

    Raises:
        BudgetStoppedError: the run was stopped at the gate; the manifest records it
            ``rejected`` (or ``expired``: nobody decided in time) with the budget as its
            reason.
    """
    store = handle.workspace.store
    if not budget_reached(store, handle.read()):
        return
    async with lock:
        while reached := budget_reached(store, manifest := handle.read()):
            # One scope per gate (the run's own first): the form's limits are that scope's.
            scope = reached[0].scope
            await _budget_gate(handle, manifest, [r for r in reached if r.scope is scope])


async def _budget_gate(handle: RunHandle, manifest: RunManifest, reached: list[Reached]) -> None:
    approval_id = next_budget_gate_id(manifest)
    suggested = suggested_limits(manifest, reached)
    scope = reached[0].scope
    store = handle.workspace.store
    daily = daily_usage(store, manifest, scope=scope) if scope in DAY_SCOPES else None
    approval = await approval_gate(
        handle,
        approval_id,
        Gate.BUDGET,
        shown=budget_markdown(handle.label, manifest, reached, daily=daily),
        mode=GateMode.REQUIRED,
        timeout_seconds=manifest.task.spec.approvals.timeouts.budget,
        policy_source="budget",
        summary=budget_summary(reached),
        form=BudgetForm.with_initial_data(**suggested.model_dump()),
    )
    if approval.decision is Decision.APPROVE:
        limits = await _submitted_limits(approval_id, suggested)
        approver = f"{approval.approver} ({approval.channel}) at {approval_id}"
        handle.update(
            lambda m: raise_budget(m, limits, approver=approver, scope=scope),
            event="budget.raised",
            approval=approval_id,
            scope=scope.value,
            limits=limits.model_dump(exclude_none=True),
        )
        return
    status, why = stopped_at_gate(Gate.BUDGET, approval)
    if status is RunStatus.REJECTED:  # a person stopped the run: who, and why
        why = f"stopped by {approval.approver} ({approval.channel})" + (
            f": {approval.reason}" if approval.reason else ""
        )
    reason = f"{budget_summary(reached)}; {why}"
    finish_run(handle, status, reason=reason)
    raise BudgetStoppedError(
        f"run {handle.label} stopped: {reason}", run_id=handle.run_id, reason=reason
    )


async def _submitted_limits(approval_id: str, suggested: BudgetLimits) -> BudgetLimits:
    """The limits the approver submitted with the form; the suggestion for those left out
    (an approval from the CLI sends none)."""
    submitted: dict[str, Any] = {}
    if current_flow_run_id() is not None:  # None (not found) leaves the suggestion
        value = await aread_flow_run_input(key=f"paused-{approval_id}-response")
        submitted = value if isinstance(value, dict) else {}
    fields = BudgetLimits.model_fields
    merged = {name: submitted.get(name, getattr(suggested, name)) for name in fields}
    try:
        return BudgetLimits.model_validate(merged)
    except ValidationError:  # the server checked the form's schema; this is a last guard
        return suggested
