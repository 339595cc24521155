"""Which way the nightly run runs its jobs, on the real Prefect test server.

Without a worker no deployment run starts: the jobs' pipeline runs stay Scheduled, which
is what the deadline and retry tests need (and keeps them cheap). Where the nightly run
falls back to subflows, a queued task file that does not parse makes its pipeline
subflow fail at once, before any agent or Vault is involved.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

import anyio
import pytest
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, State, StateType
from prefect.flow_engine import run_flow_async
from prefect.states import Scheduled

from flows._nightly_runs import PIPELINE_DEPLOYMENT
from flows.nightly import nightly
from tests.conftest import EXAMPLES, PrefectApi

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

WAIT_HOURS = 1 / 3600
"""One second: the pipeline runs, which no worker starts, are then reported unfinished."""


@dataclass(frozen=True)
class Deployed:
    """The nightly and pipeline deployments on a work pool of this test (no worker)."""

    client: PrefectClient
    nightly_id: UUID
    pipeline_id: UUID

    async def nightly_run(self, queue: Path) -> FlowRun:
        parameters = {"queue_dir": str(queue), "cloud_block": "", "wait_hours": WAIT_HOURS}
        return await self.client.create_flow_run_from_deployment(
            self.nightly_id, parameters=parameters
        )

    async def run(self, flow_run: FlowRun) -> StateType:
        """Run the nightly flow run here, as a worker's process would; its final state."""
        state = await run_flow_async(
            nightly, flow_run=flow_run, parameters=flow_run.parameters, return_type="state"
        )
        assert isinstance(state, State)
        return state.type

    async def pipeline_runs(self, nightly_run: FlowRun) -> list[FlowRun]:
        return await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[nightly_run.id])
            )
        )

    async def summary(self, nightly_run: FlowRun) -> str:
        artifacts = await self.client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[nightly_run.id])
            )
        )
        summaries = sorted((a for a in artifacts if a.key == "nightly-summary"), key=created)
        return str(summaries[-1].data)  # the last try's


def created(artifact: Artifact) -> datetime:
    assert artifact.created is not None
    return artifact.created


async def deploy(pool_limit: int | None) -> AsyncIterator[Deployed]:
    pool = f"nightly-test-{pool_limit}"
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(name=pool, type="process", concurrency_limit=pool_limit), overwrite=True
        )
        ids = []
        for flow_name, name in (("nightly", "nightly"), PIPELINE_DEPLOYMENT.split("/")):
            flow_id = await client.create_flow_from_name(flow_name)
            ids.append(await client.create_deployment(flow_id, name, work_pool_name=pool))
        try:
            yield Deployed(client, *ids)
        finally:
            for deployment_id in ids:
                await client.delete_deployment(deployment_id)
            await client.delete_work_pool(pool)


@pytest.fixture
async def deployed(prefect_api: PrefectApi) -> AsyncIterator[Deployed]:
    """A pool that admits five flow runs at once."""
    async for it in deploy(5):
        yield it


@pytest.fixture
async def deployed_one_at_a_time(prefect_api: PrefectApi) -> AsyncIterator[Deployed]:
    async for it in deploy(1):
        yield it


async def wait_for_log(flow_run_id: UUID, line: str, *, seconds: float = 30.0) -> None:
    """Until ``line`` is in a log message of the flow run in the database (logs are shipped
    in batches)."""
    logs_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    async with get_client() as client:
        with anyio.fail_after(seconds):
            while True:
                if any(line in log.message for log in await client.read_logs(logs_filter)):
                    return
                await anyio.sleep(0.2)


def queue_tasks(queue: Path, *names: str) -> None:
    queue.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(EXAMPLES / "tasks" / "add-text-helpers.yaml", queue / name)


def queue_broken_task(queue: Path) -> None:
    queue.mkdir(parents=True, exist_ok=True)
    (queue / "broken.yaml").write_text("id: [not, an, id]\n")


async def test_deployed_jobs_start_at_once_are_reported_unfinished_and_a_retry_starts_none_twice(
    deployed: Deployed, tmp_path: Path
) -> None:
    queue = tmp_path / "queue"
    queue_tasks(queue, "a.yaml", "b.yaml")
    flow_run = await deployed.nightly_run(queue)

    assert await deployed.run(flow_run) is StateType.FAILED  # its runs did not finish in time

    await wait_for_log(flow_run.id, "2 runs start now as deployment runs of pipeline/pipeline (")
    first = await deployed.pipeline_runs(flow_run)
    assert len(first) == 2
    assert {r.state_type for r in first} == {StateType.SCHEDULED}
    assert all(r.deployment_id == deployed.pipeline_id and "nightly" in r.tags for r in first)
    assert {Path(r.parameters["task_file"]).name[-6:] for r in first} == {"a.yaml", "b.yaml"}
    table = await deployed.summary(flow_run)
    for run in first:
        assert f"| queue | unfinished |  | [{run.id}](" in table
    assert table.count("still Scheduled after 1 s; it goes on") == 2

    # A retry of the same flow run: one more task queued meanwhile; the two runs it
    # started before are found again (and waited for), none is started twice.
    queue_tasks(queue, "c.yaml")
    await deployed.client.set_flow_run_state(flow_run.id, Scheduled(), force=True)
    retried = await deployed.client.read_flow_run(flow_run.id)
    assert await deployed.run(retried) is StateType.FAILED

    await wait_for_log(flow_run.id, "2 runs were started by an earlier try of this run")
    again = await deployed.pipeline_runs(flow_run)
    assert len(again) == 3
    assert {r.id for r in first} < {r.id for r in again}
    assert (await deployed.summary(flow_run)).count("| queue | unfinished |") == 3


async def test_a_pool_of_one_slot_runs_the_jobs_as_subflows_and_says_why(
    deployed_one_at_a_time: Deployed, tmp_path: Path
) -> None:
    deployed = deployed_one_at_a_time
    queue = tmp_path / "queue"
    queue_broken_task(queue)
    flow_run = await deployed.nightly_run(queue)

    assert await deployed.run(flow_run) is StateType.FAILED

    await wait_for_log(
        flow_run.id,
        "1 runs go one after the other as pipeline subflows in this process: "
        "work pool nightly-test-1 runs one flow run at a time: this one",
    )
    [subflow] = await deployed.pipeline_runs(flow_run)
    assert subflow.deployment_id is None and subflow.state_type is StateType.FAILED
    table = await deployed.summary(flow_run)
    assert f"-broken.yaml | queue | failed |  | [{subflow.id}](" in table


async def test_a_nightly_flow_called_directly_runs_subflows_and_names_the_failed_one(
    prefect_api: PrefectApi, tmp_path: Path
) -> None:
    queue = tmp_path / "queue"
    queue_broken_task(queue)

    state = await nightly(queue_dir=str(queue), cloud_block="", return_state=True)

    assert state.is_failed()
    error = await state.aresult(raise_on_failure=False)
    assert re.fullmatch(r"nightly run: 1 problems: .*-broken\.yaml \(failed: .*", str(error))
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    await wait_for_log(
        flow_run_id,
        "1 runs go one after the other as pipeline subflows in this process: "
        "this nightly run is not a deployment run",
    )
