"""The review phase: the reviewer reads the diff and the test report and gives a verdict."""

from __future__ import annotations

from prefect import flow

from agents.steps import REVIEW_STEP, review_step
from schemas import PhaseName, ReviewVerdict

from ._artifacts import publish_verdict
from ._runtime import (
    DEFAULT_BLOCK,
    PhaseRuntime,
    agent_task,
    call_agent,
    run_logger,
    running_phase,
)


@agent_task("reviewer", run_name="reviewer {runtime.handle.label}")
async def reviewer(runtime: PhaseRuntime) -> ReviewVerdict:
    """One reviewer call (skipped when the manifest records it done)."""
    verdict = await call_agent(runtime, REVIEW_STEP, review_step)
    run_logger().info("review: %s (%s)", verdict.verdict.value, "; ".join(verdict.reasons))
    return verdict


@flow(name="review", flow_run_name="review {task_id}/{run_id}")
async def review_flow(
    task_id: str,
    run_id: str,
    codex_block: str = DEFAULT_BLOCK,
    vault_block: str = DEFAULT_BLOCK,
) -> ReviewVerdict:
    """Review the merged result: approve, or request changes with reasons."""
    async with running_phase(
        PhaseName.REVIEW, task_id, run_id, codex_block=codex_block, vault_block=vault_block
    ) as runtime:
        verdict = await reviewer(runtime)
        await publish_verdict(runtime.handle, verdict)
    return verdict
