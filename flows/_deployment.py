"""Which Prefect deployment a flow run belongs to, for the run's manifest.

The deployment of the top of the flow-run tree: a deployment's own flow run records
it; so do its in-process subflows, and so do the deployment runs another deployment's
flow run starts with ``run_deployment`` (Prefect links them to it as subflows). The
pipeline runs a nightly run starts are runs of the ``pipeline`` deployment, but they
spend the nightly deployment's day (docs/budgets.md). A flow run outside any deployment
(``orchestrator run``, a flow called in a script) has none.
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext

from schemas import DeploymentRef

MAX_DEPTH = 16
"""Parents followed at most: a pipeline under a nightly run is two levels down."""


async def current_deployment() -> DeploymentRef | None:
    """The deployment at the top of this flow run's tree, as ``<flow>/<deployment>`` and
    id; None outside a deployment run."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    if run is None:
        return None
    if run.deployment_id is None and run.parent_task_run_id is None:
        return None  # a top-level flow run of no deployment: nothing to ask the API
    async with get_client() as client:
        deployment_id = await _top_deployment_id(client, run)
        if deployment_id is None:
            return None
        deployment = await client.read_deployment(deployment_id)
        flow = await client.read_flow(deployment.flow_id)
    return DeploymentRef(id=str(deployment_id), name=f"{flow.name}/{deployment.name}")


async def _top_deployment_id(client: PrefectClient, run: FlowRun) -> UUID | None:
    """The deployment of the highest flow run above ``run`` (itself included) that has one."""
    found = run.deployment_id
    for _ in range(MAX_DEPTH):
        if run.parent_task_run_id is None:
            break
        parent_task = await client.read_task_run(run.parent_task_run_id)
        if parent_task.flow_run_id is None:
            break
        run = await client.read_flow_run(parent_task.flow_run_id)
        found = run.deployment_id or found
    return found
