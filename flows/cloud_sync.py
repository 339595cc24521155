"""Mirroring runs to the Codex Cloud Runs API: the pipeline's final step and the backlog flow.

- :func:`emit_run_completed`: the ``orchestrator.run.completed`` Prefect event, one per
  end of a run. Its id is derived from the run and how it ended, so the event a
  re-run or resume of a finished run emits again is the same event, and Prefect
  keeps one (the server drops an event id it already holds).
- :func:`mirror_run`: the pipeline's last step; sends the manifest once (the sync
  ledger remembers). Any failure is recorded, never raised: the manifest says
  ``sync: failed`` with the reason, whether the Runs API refused the run or it could
  not be sent at all (no endpoint block, Vault down, no token), and the backlog
  retries it.
- :func:`sync_backlog`: retries every pending or failed sync and every finished run
  never sent, for one environment (see its docstring).

The endpoint and the token come from the blocks and Vault (``flows.cloud_client``, which
``orchestrator sync`` shares).
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.events import Event, emit_event

from orchestrator.exceptions import CredentialError, InvalidInputError
from orchestrator.lifecycle import RunHandle
from orchestrator.sync import record_failure, sync_run
from orchestrator.workspace import Workspace
from schemas import RunManifest, SyncRecord, SyncState, utc_now

from ._resources import run_resource_id
from ._runtime import DEFAULT_BLOCK, open_workspace, run_logger
from .cloud_client import CloudSources, mirror_backlog, open_runs_api

RUN_COMPLETED_EVENT = "orchestrator.run.completed"
_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:codex-orchestrator:event")


def run_completed_event_id(manifest: RunManifest) -> uuid.UUID:
    """The same id for every emission of one end of a run (status and finish time)."""
    finished = manifest.finished_at.isoformat() if manifest.finished_at else ""
    name = f"{manifest.task_id}/{manifest.run_id}/{manifest.status.value}/{finished}"
    return uuid.uuid5(_EVENT_NAMESPACE, name)


def emit_run_completed(handle: RunHandle, manifest: RunManifest) -> Event | None:
    """The ``orchestrator.run.completed`` Prefect event, with the run as its resource.

    It occurred when the run finished; emitting it again for the same end (a resume
    of a finished run) sends the same event id, which Prefect stores once.
    """
    result = manifest.result
    return emit_event(
        event=RUN_COMPLETED_EVENT,
        id=run_completed_event_id(manifest),
        occurred=manifest.finished_at or utc_now(),
        resource={
            "prefect.resource.id": run_resource_id(handle.task_id, handle.run_id),
            "prefect.resource.name": handle.label,
            "orchestrator.task-id": handle.task_id,
            "orchestrator.run-id": handle.run_id,
        },
        payload={
            "status": manifest.status.value,
            "reason": manifest.status_reason,
            "env": manifest.env,
            "mode": manifest.mode.mode.value,
            "manifest": str(handle.manifest_path),
            "result_branch": result.branch if result else None,
            "result_commit": result.commit if result else None,
        },
    )


async def _mirror(
    workspace: Workspace, task_id: str, run_id: str, cloud_block: str, vault_block: str
) -> SyncRecord:
    env = workspace.store.read(task_id, run_id).env
    async with AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(
                open_runs_api(workspace, env, CloudSources(cloud_block, vault_block))
            )
        except (InvalidInputError, CredentialError) as exc:
            error = f"not sent: {exc}"
            return await asyncio.to_thread(record_failure, workspace, task_id, run_id, error=error)
        # Blocking HTTP with backoff sleeps: keep it off the event loop.
        return await asyncio.to_thread(sync_run, workspace, client, task_id, run_id)


@task(name="mirror-run", task_run_name="mirror {task_id}/{run_id}", cache_policy=NO_CACHE)
async def mirror_run(
    task_id: str, run_id: str, cloud_block: str = DEFAULT_BLOCK, vault_block: str = DEFAULT_BLOCK
) -> SyncRecord:
    """Mirror one finished run to the Runs API, once.

    A failure is recorded in the ledger and the manifest (``sync: failed`` with the
    reason), not raised: the run's work stands, and ``orchestrator sync --pending``
    or the ``sync-backlog`` flow retries it. A run already synced is not sent again.
    """
    record = await _mirror(open_workspace(), task_id, run_id, cloud_block, vault_block)
    logger = run_logger()
    if record.state is SyncState.SYNCED:
        logger.info("cloud sync: synced as %s", record.cloud_run_id)
    else:
        logger.warning(
            "cloud sync %s after %d attempts: %s; 'orchestrator sync --pending' or the "
            "sync-backlog flow retries it",
            record.state.value,
            record.attempts,
            record.last_error,
        )
    return record


@flow(name="sync-backlog", flow_run_name="sync backlog ({env})")
async def sync_backlog(
    env: str = "dev", cloud_block: str = DEFAULT_BLOCK, vault_block: str = DEFAULT_BLOCK
) -> dict[str, int]:
    """Retry every run of ``env`` whose sync is pending or failed, and its finished runs
    never sent.

    One environment per flow run, because the Runs API token is that environment's
    Vault secret, and the process holds only that environment's Vault login: runs of
    other environments are left for their own environment's backlog (counted in
    ``other_env``), never sent with this environment's token. Schedule one
    ``sync-backlog`` run per environment.

    Args:
        env: The environment whose runs are mirrored, with whose token.
        cloud_block: Name of the Codex Cloud endpoint block.
        vault_block: Name of the Vault credentials block of ``env``.

    Returns:
        Counts: ``synced``, ``failed`` (tried and failed again), ``errors`` (could not
        be tried), ``other_env`` (left alone).
    """
    workspace = open_workspace()
    summary = await mirror_backlog(workspace, CloudSources(cloud_block, vault_block), env=env)
    logger = run_logger()
    for record in summary.failed:
        logger.warning("not synced: %s/%s: %s", record.task_id, record.run_id, record.last_error)
    for error in summary.errors:
        logger.warning("not tried: %s", error)
    if summary.other_env:
        logger.info("left for their own environment's backlog: %s", ", ".join(summary.other_env))
    logger.info(
        "backlog (%s): %d synced, %d failed, %d errors, %d of other environments",
        env,
        len(summary.synced),
        len(summary.failed),
        len(summary.errors),
        len(summary.other_env),
    )
    return {
        "synced": len(summary.synced),
        "failed": len(summary.failed),
        "errors": len(summary.errors),
        "other_env": len(summary.other_env),
    }
