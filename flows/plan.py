"""The plan phase: the planner splits the goal into subtasks (or the spec fixes them)."""

from __future__ import annotations

from prefect import flow

from agents.steps import PLAN_STEP, plan_step
from schemas import PhaseName, Plan

from ._artifacts import publish_plan
from ._runtime import (
    DEFAULT_BLOCK,
    PhaseRuntime,
    agent_task,
    call_agent,
    run_logger,
    running_phase,
)


@agent_task("planner", run_name="planner {runtime.handle.label}")
async def planner(runtime: PhaseRuntime) -> Plan:
    """One planner call (skipped when the manifest records it done)."""
    plan = await call_agent(runtime, PLAN_STEP, plan_step)
    run_logger().info(
        "plan: %d subtasks: %s", len(plan.subtasks), ", ".join(s.id for s in plan.subtasks)
    )
    return plan


@flow(name="plan", flow_run_name="plan {task_id}/{run_id}")
async def plan_flow(
    task_id: str,
    run_id: str,
    codex_block: str = DEFAULT_BLOCK,
    vault_block: str = DEFAULT_BLOCK,
) -> Plan:
    """Plan a run: split the task's goal into subtasks, one builder call each."""
    async with running_phase(
        PhaseName.PLAN, task_id, run_id, codex_block=codex_block, vault_block=vault_block
    ) as runtime:
        plan = await planner(runtime)
        await publish_plan(runtime.handle, plan)
    return plan
