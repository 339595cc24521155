"""Mirroring runs to the Codex Cloud Runs API: the pipeline's final step and the backlog flow."""

from __future__ import annotations

import asyncio

from prefect import flow, task
from prefect.events import emit_event

from blocks import CodexCloudEndpoint, VaultCredentials
from orchestrator.lifecycle import RunHandle
from orchestrator.sync import sync_pending, sync_run
from orchestrator.workspace import Workspace
from schemas import RunManifest, SyncRecord

from ._runtime import DEFAULT_BLOCK, load_block, open_credentials, open_workspace, run_logger

RUN_COMPLETED_EVENT = "orchestrator.run.completed"


def emit_run_completed(handle: RunHandle, manifest: RunManifest) -> None:
    """The ``orchestrator.run.completed`` Prefect event, with the run as its resource."""
    result = manifest.result
    emit_event(
        event=RUN_COMPLETED_EVENT,
        resource={
            "prefect.resource.id": f"orchestrator.run.{handle.task_id}.{handle.run_id}",
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
    endpoint = await load_block(CodexCloudEndpoint, cloud_block)
    vault = await load_block(VaultCredentials, vault_block)
    env = workspace.store.read(task_id, run_id).env
    with (
        open_credentials(vault, env, workspace) as broker,
        endpoint.get_client(broker, audit=workspace.audit, redactor=workspace.redactor) as client,
    ):
        # Blocking HTTP with backoff sleeps: keep it off the event loop.
        return await asyncio.to_thread(sync_run, workspace, client, task_id, run_id)


@task(name="mirror-run", task_run_name="mirror {task_id}/{run_id}")
async def mirror_run(
    task_id: str, run_id: str, cloud_block: str = DEFAULT_BLOCK, vault_block: str = DEFAULT_BLOCK
) -> SyncRecord:
    """Mirror one finished run to the Runs API (once); a failure is recorded, not raised."""
    record = await _mirror(open_workspace(), task_id, run_id, cloud_block, vault_block)
    logger = run_logger()
    if record.last_error and record.state.value != "synced":
        logger.warning(
            "cloud sync %s after %d attempts: %s",
            record.state.value,
            record.attempts,
            record.last_error,
        )
    else:
        logger.info("cloud sync %s as %s", record.state.value, record.cloud_run_id)
    return record


@flow(name="sync-backlog", flow_run_name="sync backlog ({env})")
async def sync_backlog(
    env: str = "dev", cloud_block: str = DEFAULT_BLOCK, vault_block: str = DEFAULT_BLOCK
) -> dict[str, int]:
    """Retry every run whose sync is pending or failed, and finished runs never sent."""
    workspace = open_workspace()
    endpoint = await load_block(CodexCloudEndpoint, cloud_block)
    vault = await load_block(VaultCredentials, vault_block)
    with (
        open_credentials(vault, env, workspace) as broker,
        endpoint.get_client(broker, audit=workspace.audit, redactor=workspace.redactor) as client,
    ):
        summary = await asyncio.to_thread(sync_pending, workspace, client)
    logger = run_logger()
    for error in summary.errors:
        logger.warning("not synced: %s", error)
    logger.info(
        "backlog: %d synced, %d failed, %d errors",
        len(summary.synced),
        len(summary.failed),
        len(summary.errors),
    )
    return {
        "synced": len(summary.synced),
        "failed": len(summary.failed),
        "errors": len(summary.errors),
    }
