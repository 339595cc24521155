"""The build phase fanned out: each subtask a deployment run that any worker may take.

With ``ORCHESTRATOR_SUBTASK_DEPLOYMENT`` set, a ``parallel`` run's build phase pushes
its base commit to the shared git remote and starts one run of that deployment
(:mod:`flows.subtask`) per subtask not yet built, with an idempotency key per run,
subtask and attempt (:func:`agents.fanout.dispatch_key`): starting it again, as a
resumed run does, finds the run already there instead of making a second one. It
waits for each run, reads its persisted result, fetches the subtask branch and records
who built it.

The run's budget is checked before each dispatch and after each build is recorded,
as around an in-process builder call (a worker's own gate sees only its own usage).

A build found ended without success (its worker crashed and Prefect marked it so, or
it failed before this manager restarted), or one that crashes while the manager waits,
is started again as the next attempt, on the next queue (another worker); one that
completed is only read, never rebuilt.
"""

from __future__ import annotations

import asyncio
import itertools
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.concurrency.asyncio import concurrency
from prefect.deployments.flow_runs import arun_deployment

from agents.fanout import dispatch_key, push_base, record_build, subtask_job, subtask_remote
from agents.steps import subtask_done
from orchestrator.exceptions import InvalidInputError, SubtaskRunError
from schemas import SubtaskBuild, SubtaskJob

from ._budget_gate import enforce_budget
from ._polling import poll_final
from ._runtime import PhaseRuntime, run_logger

BUILDERS_LIMIT = "codex-builders"
POLL_SECONDS = 1.0
RERUNS = 2
"""Times a subtask build that crashed on its worker is started again, before the phase fails."""
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
        await enforce_budget(handle, runtime.budget_lock)  # as before an in-process call
        async with gate, concurrency(BUILDERS_LIMIT, occupy=1, strict=False):
            build = await dispatched_build(deployment, job, queues=queues, index=index)
        record = record_build(handle, remote, build)
        run_logger().info(
            "%s: built by %s in flow run %s, commit %s",
            subtask_id,
            build.built_by.worker,
            build.built_by.flow_run_id,
            (record.commit or "")[:12],
        )
        # The worker's budget gate saw only its own usage; the run's is seen here.
        await enforce_budget(handle, runtime.budget_lock)

    async with asyncio.TaskGroup() as group:
        for index, subtask_id in enumerate(todo):
            group.create_task(build_one(index, subtask_id))


async def dispatched_build(
    deployment: str, job: SubtaskJob, *, queues: list[str], index: int
) -> SubtaskBuild:
    """Start (or find) the job's deployment run, wait for its success, read its result.

    Attempt ``n`` has its own idempotency key (:func:`agents.fanout.dispatch_key`) and
    goes to the queue after attempt ``n-1``'s (:func:`attempt_queue`). An attempt found
    ended badly (an earlier manager's: its worker died, or it failed) is followed by the
    next; one that crashes while this manager waits too, at most :data:`RERUNS` times.

    Raises:
        SubtaskRunError: the run failed, or crashed more than :data:`RERUNS` times.
        InvalidInputError: its result is not a subtask build.
    """
    crashes = 0
    async with get_client() as client:
        for attempt in itertools.count(1):
            run = await arun_deployment(
                deployment,
                parameters={"job": job.model_dump(mode="json")},
                timeout=0,
                idempotency_key=dispatch_key(job, attempt),
                work_queue_name=attempt_queue(queues, index, attempt),
            )
            if not _ended_badly(run):
                run = await _wait_final(client, run.id)
                assert run.state is not None
                if run.state.type is StateType.COMPLETED:
                    return await _read_build(run, job)
                if run.state.type is not StateType.CRASHED or crashes >= RERUNS:
                    raise _failed(run, job)
                crashes += 1
            state = run.state.name if run.state else "no state"
            run_logger().warning(
                "%s: flow run %s ended %s; built again", job.subtask.id, run.name, state
            )
    raise AssertionError("unreachable")  # pragma: no cover


def attempt_queue(queues: list[str], index: int, attempt: int) -> str | None:
    """The queue of attempt ``attempt`` (from 1) of the ``index``-th subtask: the subtasks
    in turn, and a crashed build's next attempt on the next queue (another worker);
    None (the deployment's own) without queues."""
    return queues[(index + attempt - 1) % len(queues)] if queues else None


async def _read_build(run: FlowRun, job: SubtaskJob) -> SubtaskBuild:
    assert run.state is not None
    data = await run.state.aresult(raise_on_failure=True)
    try:
        return SubtaskBuild.model_validate(data)
    except ValueError:
        raise InvalidInputError(
            f"flow run {run.name} returned no subtask build for {job.subtask.id!r}"
        ) from None


def _failed(run: FlowRun, job: SubtaskJob) -> SubtaskRunError:
    state = run.state
    return SubtaskRunError(
        f"subtask {job.subtask.id} of {job.task_id}/{job.run_id}: flow run {run.name} ended "
        f"{state.name if state else 'without a state'}: {state.message if state else ''}",
        run_id=job.run_id,
        subtask_id=job.subtask.id,
        flow_run_id=str(run.id),
    )


def _ended_badly(run: FlowRun) -> bool:
    return run.state is not None and run.state.type in RERUN_STATES


async def _wait_final(client: PrefectClient, flow_run_id: UUID) -> FlowRun:
    """The flow run, read until it is final: no deadline (a build takes what it takes)."""

    async def read(flow_run_ids: set[UUID]) -> list[FlowRun]:
        return [await client.read_flow_run(i) for i in flow_run_ids]

    final = await poll_final(read, [flow_run_id], poll_seconds=POLL_SECONDS)
    return final[flow_run_id]
