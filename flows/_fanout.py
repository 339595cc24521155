"""The build phase fanned out: each subtask a deployment run that any worker may take.

With ``ORCHESTRATOR_SUBTASK_DEPLOYMENT`` set, a ``parallel`` run's build phase pushes
its base commit to the shared git remote and starts one run of that deployment
(:mod:`flows.subtask`) per subtask not yet built, with an idempotency key per run and
subtask (:func:`agents.fanout.dispatch_key`): starting it again, as a resumed run does,
finds the run already there instead of making a second one. It waits for each run,
reads its persisted result, fetches the subtask branch and records who built it.

A run found ended without success (its worker crashed and Prefect marked it so, or a
run that failed before this manager restarted) is scheduled again, to run on any
worker; one that completed is only read, never rebuilt.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import anyio
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.concurrency.asyncio import concurrency
from prefect.deployments.flow_runs import arun_deployment
from prefect.states import Scheduled

from agents.fanout import dispatch_key, push_base, record_build, subtask_job, subtask_remote
from agents.steps import subtask_done
from orchestrator.exceptions import InvalidInputError, SubtaskRunError
from schemas import SubtaskBuild, SubtaskJob

from ._runtime import PhaseRuntime, run_logger

BUILDERS_LIMIT = "codex-builders"
POLL_SECONDS = 1.0
RERUNS = 2
"""Times a subtask run that crashed on its worker is scheduled again, before the phase fails."""
RERUN_STATES = frozenset({StateType.CRASHED, StateType.FAILED, StateType.CANCELLED})


async def build_on_workers(
    runtime: PhaseRuntime,
    subtask_ids: list[str],
    *,
    deployment: str,
    codex_block: str,
    vault_block: str,
) -> None:
    """Build every subtask not yet built as a run of ``deployment``; record each."""
    handle = runtime.handle
    todo = [s for s in subtask_ids if not subtask_done(handle, s)]
    if not todo:
        return
    remote = subtask_remote(handle)
    base_ref = push_base(handle, remote)
    queues = handle.workspace.settings.subtask_queues
    gate = asyncio.Semaphore(handle.read().task.spec.execution.max_parallel)

    async def build_one(index: int, subtask_id: str) -> None:
        job = subtask_job(
            handle,
            subtask_id,
            remote=remote,
            base_ref=base_ref,
            codex_block=codex_block,
            vault_block=vault_block,
        )
        queue = queues[index % len(queues)] if queues else None
        async with gate, concurrency(BUILDERS_LIMIT, occupy=1, strict=False):
            build = await dispatched_build(deployment, job, queue=queue)
        record = record_build(handle, remote, build)
        run_logger().info(
            "%s: built by %s in flow run %s, commit %s",
            subtask_id,
            build.built_by.worker,
            build.built_by.flow_run_id,
            (record.commit or "")[:12],
        )

    async with asyncio.TaskGroup() as group:
        for index, subtask_id in enumerate(todo):
            group.create_task(build_one(index, subtask_id))


async def dispatched_build(deployment: str, job: SubtaskJob, *, queue: str | None) -> SubtaskBuild:
    """Start (or find) the job's deployment run, wait for its success, read its result.

    Raises:
        SubtaskRunError: the run failed, or crashed more than :data:`RERUNS` times.
        InvalidInputError: its result is not a subtask build.
    """
    found = await arun_deployment(
        deployment,
        parameters={"job": job.model_dump(mode="json")},
        timeout=0,
        idempotency_key=dispatch_key(job),
        work_queue_name=queue,
    )
    async with get_client() as client:
        if _ended_badly(found):  # left by an earlier manager: its worker died, or it failed
            await _schedule_again(client, found, job)
        finished = await _until_built(client, found.id, job)
        assert finished.state is not None
        data = await finished.state.aresult(raise_on_failure=True)
    try:
        return SubtaskBuild.model_validate(data)
    except ValueError:
        raise InvalidInputError(
            f"flow run {finished.name} returned no subtask build for {job.subtask.id!r}"
        ) from None


async def _until_built(client: PrefectClient, flow_run_id: UUID, job: SubtaskJob) -> FlowRun:
    reruns = 0
    while True:
        run = await _wait_final(client, flow_run_id)
        assert run.state is not None
        if run.state.type is StateType.COMPLETED:
            return run
        if run.state.type is not StateType.CRASHED or reruns >= RERUNS:
            raise SubtaskRunError(
                f"subtask {job.subtask.id} of {job.task_id}/{job.run_id}: flow run {run.name} "
                f"ended {run.state.name}: {run.state.message or 'no message'}",
                run_id=job.run_id,
                subtask_id=job.subtask.id,
                flow_run_id=str(run.id),
            )
        reruns += 1
        await _schedule_again(client, run, job)


def _ended_badly(run: FlowRun) -> bool:
    return run.state is not None and run.state.type in RERUN_STATES


async def _schedule_again(client: PrefectClient, run: FlowRun, job: SubtaskJob) -> None:
    state = run.state.name if run.state else "no state"
    run_logger().warning(
        "%s: flow run %s ended %s; scheduled again for any worker", job.subtask.id, run.name, state
    )
    await client.set_flow_run_state(run.id, Scheduled(), force=True)


async def _wait_final(client: PrefectClient, flow_run_id: UUID) -> FlowRun:
    while True:
        run = await client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        await anyio.sleep(POLL_SECONDS)
