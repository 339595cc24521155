"""Flow runs of a deployment, run in this process (as a worker would, without one)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.flow_engine import run_flow_async


async def deployment_id(flow: Flow[..., Any], name: str) -> str:
    """The id of deployment ``name`` of ``flow`` on the current Prefect API (created, or
    the one there already: a deployment is upserted by flow and name)."""
    async with get_client() as client:
        flow_id = await client.create_flow(flow)
        return str(await client.create_deployment(flow_id=flow_id, name=name))


async def run_deployment_here(
    flow: Flow[..., Any],
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    parent_task_run_id: UUID | None = None,
) -> State[Any]:
    """A flow run of deployment ``name`` of ``flow``, run to its end in this process; its
    final state. With ``parent_task_run_id``, linked below that task run's flow run, as
    ``run_deployment`` links the runs it starts."""
    deployment = await deployment_id(flow, name)
    async with get_client() as client:
        flow_run = await client.create_flow_run_from_deployment(
            UUID(deployment), parameters=parameters or {}, parent_task_run_id=parent_task_run_id
        )
    state = await run_flow_async(
        flow, flow_run=flow_run, parameters=parameters or {}, return_type="state"
    )
    assert isinstance(state, State)
    return state
