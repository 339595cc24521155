"""The nightly run's jobs as ``pipeline`` deployment runs: started, awaited, read back.

Started with ``run_deployment`` (``timeout=0``, linked to the nightly run as its subflow
runs), each under an idempotency key made of the nightly flow run's id and the job's task
file: a retried nightly run (the same flow run id) gets the flow runs it already started
back instead of new ones. The work pool's concurrency limit admits them: the worker
starts as many as the limit allows; the rest wait Scheduled (Late) for a slot.

How a job ended is read from its flow run, through the API the nightly run talks to
anyway, not from a result or a manifest: Prefect persists no results by default, a
persisted one would sit in the worker's result storage, and the manifest in the
worker's ``ORCHESTRATOR_HOME``, neither of which need be where the nightly run is. The
pipeline writes what matters into its flow run: the name ``<task id>/<run id>`` as soon
as its run is open, and its final state (Completed; Cancelled named ``Rejected`` or
``Expired``, the reason as its message; Failed with the error).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, State
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import FlowRunContext
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound

from schemas import check_safe_id

from ._polling import poll_final
from .ui_links import flow_run_url

PIPELINE_DEPLOYMENT = "pipeline/pipeline"
POLL_SECONDS = 2.0
"""Between two reads of the runs still going (one API call for all of them)."""
READ_BATCH = 100
"""Flow runs read per call: under the server's default limit of 200."""
NIGHTLY_TAG = "nightly"


@dataclass(frozen=True)
class Dispatch:
    """Where the nightly run's jobs go: a deployment, or (``deployment`` None) subflows."""

    deployment: DeploymentResponse | None
    why: str
    """Said in the log: which way the jobs run, and why."""


async def choose_dispatch(client: PrefectClient) -> Dispatch:
    """Deployment runs when this nightly run is one and the pipeline deployment can run.

    Subflows otherwise: outside a deployment (a nightly flow called in a script or a
    test, against any API), without a ``pipeline/pipeline`` deployment on the server,
    or when the nightly run's own work pool admits one flow run at a time (this one:
    its pipeline runs would wait for it for ever).
    """
    context = FlowRunContext.get()
    own = context.flow_run if context else None
    if own is None or own.deployment_id is None:
        return Dispatch(None, "this nightly run is not a deployment run")
    try:
        deployment = await client.read_deployment_by_name(PIPELINE_DEPLOYMENT)
    except ObjectNotFound:
        return Dispatch(None, f"the server has no deployment {PIPELINE_DEPLOYMENT}")
    pool = deployment.work_pool_name
    limit = (await client.read_work_pool(pool)).concurrency_limit if pool else None
    if pool and pool == own.work_pool_name and limit == 1:
        return Dispatch(None, f"work pool {pool} runs one flow run at a time: this one")
    admitted = f"at most {limit} flow runs at once" if limit else "no limit"
    if pool and pool == own.work_pool_name:
        admitted += ", this nightly run among them"
    where = f"work pool {pool}, {admitted}" if pool else "no work pool"
    return Dispatch(deployment, f"{PIPELINE_DEPLOYMENT} ({where})")


def job_key(nightly_flow_run_id: str, task_file: str) -> str:
    """The idempotency key of one job of one nightly flow run (the same on its retries)."""
    digest = hashlib.sha256(f"{nightly_flow_run_id}:{task_file}".encode()).hexdigest()
    return f"nightly-{digest[:32]}"


async def start_run(
    deployment: DeploymentResponse, *, key: str, parameters: dict[str, str]
) -> FlowRun:
    """Create the job's flow run (or find the one its key made) and return at once."""
    flow_run: FlowRun = await arun_deployment(
        deployment.id,
        parameters=parameters,
        timeout=0,
        idempotency_key=key,
        tags=[NIGHTLY_TAG],
    )
    return flow_run


async def started_earlier(
    client: PrefectClient, deployment: DeploymentResponse, nightly_flow_run_id: UUID
) -> list[FlowRun]:
    """The deployment's flow runs this nightly flow run started before (on an earlier try)."""
    return await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[nightly_flow_run_id])
        ),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,  # the order they were started in
    )


async def wait_final(
    client: PrefectClient,
    flow_run_ids: Iterable[UUID],
    *,
    within: float,
    on_final: Callable[[FlowRun], object],
    poll_seconds: float = POLL_SECONDS,
) -> dict[UUID, FlowRun]:
    """Read the flow runs until each is final or ``within`` seconds have passed.

    Returns the last read of each (still going when the time ran out); ``on_final`` is
    called once per run as it is seen final.
    """
    return await poll_final(
        partial(_read, client),
        flow_run_ids,
        poll_seconds=poll_seconds,
        within=within,
        on_final=on_final,
    )


async def _read(client: PrefectClient, ids: set[UUID]) -> list[FlowRun]:
    wanted, runs = sorted(ids), []
    for start in range(0, len(wanted), READ_BATCH):
        batch = wanted[start : start + READ_BATCH]
        runs += await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)), limit=len(batch)
        )
    return runs


def status_of(state: State) -> str:
    """The run's status as a final pipeline state tells it."""
    if state.is_completed():
        return "succeeded"  # the pipeline completes only a run that succeeded
    if state.is_cancelled() and state.name in {"Rejected", "Expired"}:
        return state.name.lower()  # stopped at a gate (flows/pipeline.py)
    return (state.name or state.type.value).lower()  # failed, crashed, cancelled


def run_of_name(name: str) -> tuple[str, str]:
    """``(task id, run id)`` from a flow run named ``<task id>/<run id>``; else blanks."""
    task_id, _, run_id = name.partition("/")
    try:
        return check_safe_id(task_id), check_safe_id(run_id)
    except ValueError:
        return "", ""  # not named yet: the run ended before it was open


def flow_run_link(flow_run_id: UUID | str | None) -> dict[str, str]:
    """``flow_run_id`` and ``url`` (its page in the UI; blank when no UI is known)."""
    if flow_run_id is None:
        return {"flow_run_id": "", "url": ""}
    return {"flow_run_id": str(flow_run_id), "url": flow_run_url(flow_run_id) or ""}
