"""Which deployment a flow run belongs to: its own, the one it runs under, or none."""

from __future__ import annotations

from uuid import UUID

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client

from flows._deployment import current_deployment
from schemas import DeploymentRef
from tests.helpers.deployments import deployment_id, run_deployment_here

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@flow(name="probe-inner")
async def inner() -> DeploymentRef | None:
    return await current_deployment()


@task(name="start-pipeline")
def starter_task() -> None:
    """Stands for the task run ``run_deployment`` makes in the flow run that calls it."""


@flow(name="probe")
async def probe(nested: bool = False) -> DeploymentRef | None:
    return await inner() if nested else await current_deployment()


async def test_a_deployments_flow_run_and_its_subflows_name_the_deployment(
    prefect_api: object,
) -> None:
    expected = DeploymentRef(id=await deployment_id(probe, "nightly-ish"), name="probe/nightly-ish")
    for nested in (False, True):
        state = await run_deployment_here(probe, "nightly-ish", {"nested": nested})
        assert await state.aresult() == expected


async def test_a_deployment_run_another_deployments_run_started_names_the_top_one(
    prefect_api: object,
) -> None:
    """As the nightly run's pipeline deployment runs: they spend the nightly's day."""
    top = await deployment_id(probe, "nightly-ish")
    async with get_client() as client:
        starter = await client.create_flow_run_from_deployment(UUID(top))
        link = await client.create_task_run(starter_task, flow_run_id=starter.id, dynamic_key="0")
    state = await run_deployment_here(inner, "pipeline-ish", parent_task_run_id=link.id)
    assert await state.aresult() == DeploymentRef(id=top, name="probe/nightly-ish")


async def test_a_flow_run_outside_a_deployment_has_none(prefect_api: object) -> None:
    assert await probe() is None
    assert await probe(nested=True) is None
    assert await current_deployment() is None  # no flow run at all
