"""Which Prefect deployment a flow run belongs to, for the run's manifest.

A deployment's flow run records it; so do its subflows (a nightly run's ``pipeline``
subflows have no deployment of their own: Prefect passes the top-level run's deployment
down to them, ``prefect.runtime.deployment.id``). A flow run outside any deployment
(``orchestrator run``, a flow called in a script) has none.
"""

from __future__ import annotations

from uuid import UUID

import anyio
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.runtime import deployment as prefect_deployment

from schemas import DeploymentRef


async def current_deployment() -> DeploymentRef | None:
    """The deployment whose flow run this is (or whose flow run this one runs under), as
    ``<flow>/<deployment>`` and id; None outside a deployment run."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    if run is None:
        return None
    if run.deployment_id is None and run.parent_task_run_id is None:
        return None  # a top-level flow run of no deployment: nothing to ask the API
    # Prefect's runtime blocks on its own loop thread when it must ask the API.
    deployment_id = await anyio.to_thread.run_sync(prefect_deployment.get_id)
    if deployment_id is None:
        return None
    async with get_client() as client:
        deployment = await client.read_deployment(UUID(deployment_id))
        flow = await client.read_flow(deployment.flow_id)
    return DeploymentRef(id=str(deployment_id), name=f"{flow.name}/{deployment.name}")
