"""The build phase: one builder call per subtask, each in its own worktree and branch.

In ``parallel`` mode the builders run concurrently (at most ``execution.max_parallel``
of this run, and at most the ``codex-builders`` global concurrency limit across runs
when that limit exists): in this process, or, with ``ORCHESTRATOR_SUBTASK_DEPLOYMENT``
set, each as a deployment run on the workers of that deployment's pool
(:mod:`flows._fanout`). In ``mcp`` mode one after the other. The phase ends by
merging every subtask branch into the run's result branch.
"""

from __future__ import annotations

import asyncio

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.asyncio import concurrency

from agents.steps import build_step, build_step_id, merge_step
from schemas import ExecutionMode, PhaseName, RunResult, SubtaskRecord

from ._artifacts import publish_subtasks
from ._fanout import BUILDERS_LIMIT, build_on_workers
from ._runtime import (
    DEFAULT_BLOCK,
    PhaseRuntime,
    agent_task,
    call_agent,
    run_logger,
    running_phase,
)


@agent_task("builder", run_name="builder {subtask_id}")
async def builder(runtime: PhaseRuntime, subtask_id: str) -> SubtaskRecord:
    """One builder call for exactly one subtask (skipped when the manifest records it done)."""
    step_id = build_step_id(subtask_id)
    record = await call_agent(runtime, step_id, build_step, subtask_id)
    run_logger().info("%s: committed %s on %s", step_id, (record.commit or "")[:12], record.branch)
    return record


@task(name="merge", task_run_name="merge subtasks", cache_policy=NO_CACHE)
async def merge(runtime: PhaseRuntime) -> RunResult:
    """Merge the subtask branches into the result branch (no agent call).

    Async like the flow: a sync task would run on Prefect's sync engine, which builds
    a client of its own each time (~25 ms).
    """
    result = merge_step(runtime.handle)
    run_logger().info("result %s at %s\n%s", result.branch, result.commit, result.diff_stat)
    return result


async def _build_all(runtime: PhaseRuntime, subtask_ids: list[str], blocks: dict[str, str]) -> None:
    manifest = runtime.handle.read()
    if manifest.mode.mode is not ExecutionMode.PARALLEL:
        for subtask_id in subtask_ids:
            await builder(runtime, subtask_id)
        return
    deployment = runtime.handle.workspace.settings.subtask_deployment
    if deployment:
        await build_on_workers(runtime, subtask_ids, deployment=deployment, **blocks)
        return
    gate = asyncio.Semaphore(manifest.task.spec.execution.max_parallel)

    async def build_one(subtask_id: str) -> None:
        async with gate, concurrency(BUILDERS_LIMIT, occupy=1, strict=False):
            await builder(runtime, subtask_id)

    async with asyncio.TaskGroup() as group:
        for subtask_id in subtask_ids:
            group.create_task(build_one(subtask_id))


@flow(name="build", flow_run_name="build {task_id}/{run_id}")
async def build_flow(
    task_id: str,
    run_id: str,
    codex_block: str = DEFAULT_BLOCK,
    vault_block: str = DEFAULT_BLOCK,
) -> RunResult:
    """Build every planned subtask (the one-subtask rule), then merge them for test."""
    async with running_phase(
        PhaseName.BUILD, task_id, run_id, codex_block=codex_block, vault_block=vault_block
    ) as runtime:
        subtask_ids = [s.id for s in runtime.handle.read().subtasks]
        try:
            blocks = {"codex_block": codex_block, "vault_block": vault_block}
            await _build_all(runtime, subtask_ids, blocks)
        finally:
            await publish_subtasks(runtime.handle, runtime.handle.read())
        result = await merge(runtime)
    return result
