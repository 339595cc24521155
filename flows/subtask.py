"""One subtask's build on a worker: the ``build-subtask`` deployment's flow.

In ``parallel`` mode with ``ORCHESTRATOR_SUBTASK_DEPLOYMENT`` set, the build phase
starts one run of this flow per subtask (:mod:`flows._fanout`). It runs on any worker
of the deployment's pool, which shares nothing with the manager but the Prefect API,
the git remote named in the job and Prefect result storage: it opens a run of its own
under its own ORCHESTRATOR_HOME, logs in to Vault with its own credentials, builds the
subtask on its own worktree, pushes the branch and returns what it did as a persisted
JSON result (the storage is Prefect's: ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``, or
``PREFECT_LOCAL_STORAGE_PATH`` on a shared folder; docs/deployments.md).
"""

from __future__ import annotations

import socket
from typing import Any

from prefect import flow
from prefect.runtime import flow_run as prefect_flow_run

from agents.fanout import open_worker_run, push_subtask, subtask_build
from schemas import BuiltBy, PhaseName, SubtaskJob

from ._runtime import current_flow_run_id, open_workspace, run_logger, running_phase
from .build import builder

FLOW_NAME = "build-subtask"


def _run_name() -> str:
    job = prefect_flow_run.parameters.get("job") or {}
    if isinstance(job, SubtaskJob):
        return f"build {job.task_id}/{job.run_id}/{job.subtask.id}"
    subtask = (job.get("subtask") or {}).get("id", "?")
    return f"build {job.get('task_id', '?')}/{job.get('run_id', '?')}/{subtask}"


@flow(name=FLOW_NAME, flow_run_name=_run_name, persist_result=True, result_serializer="json")
async def build_subtask(job: SubtaskJob) -> dict[str, Any]:
    """Build one subtask of a run on this worker and push its branch to the job's remote.

    Returns the :class:`~schemas.SubtaskBuild` as JSON data (a JSON result, not a
    pickle: the manager reads it as untrusted input).
    """
    workspace = open_workspace()
    handle = open_worker_run(workspace, job)
    async with running_phase(
        PhaseName.BUILD,
        job.task_id,
        job.run_id,
        codex_block=job.codex_block,
        vault_block=job.vault_block,
    ) as runtime:
        await builder(runtime, job.subtask.id)
    push_subtask(handle, job)
    settings = workspace.settings
    built_by = BuiltBy(
        flow_run_id=current_flow_run_id() or "",
        worker=settings.worker_name or socket.gethostname(),
        home=str(settings.home),
    )
    run_logger().info("%s built by %s, pushed to the remote", job.subtask.id, built_by.worker)
    return subtask_build(handle, job.subtask.id, built_by).model_dump(mode="json")
