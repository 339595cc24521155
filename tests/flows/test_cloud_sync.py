"""Issue 8 at pipeline level: the RunCompleted event, and a final step that mirrors every
manifest to the Runs API exactly once, on real parts.

Each test has a Runs API server of its own (an empty database, its own fault plan),
so "exactly one record per run" is counted on the server itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.events.schemas.events import ReceivedEvent

from blocks import CodexCloudEndpoint
from flows.cloud_sync import RUN_COMPLETED_EVENT, run_resource_id, sync_backlog
from flows.pipeline import pipeline
from orchestrator.credentials import CLOUD_TOKEN
from orchestrator.runs_api import idempotency_key
from orchestrator.sync import ledger_for
from orchestrator.workspace import Workspace
from schemas import RunManifest, RunStatus, SyncState, utc_now
from tests.cloud.helpers import create_run
from tests.flows.conftest import CLOUD_WORKSPACE, OwnRunsApi, RunsApiServers, Stack

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

T = TypeVar("T")
TASK = "add-text-helpers.yaml"


@pytest.fixture
def cloud(stack: Stack, own_runs_api: RunsApiServers) -> OwnRunsApi:
    """A Runs API server of this test's own, accepting the dev token; block 'own-cloud'."""
    server = own_runs_api.start(stack.vault.values("dev")[CLOUD_TOKEN])
    CodexCloudEndpoint(base_url=server.url, workspace_id=CLOUD_WORKSPACE).save(
        "own-cloud", overwrite=True
    )
    return server


async def wait_for(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, seconds: float = 15.0
) -> T:
    """Poll ``probe`` until ``done`` holds for its value, for at most ``seconds``.

    Events reach the Prefect database on the persister's next flush (0.2 s in tests).
    """
    with anyio.fail_after(seconds):
        while True:
            value = await probe()
            if done(value):
                return value
            await anyio.sleep(0.1)


async def completed_events(manifest: RunManifest, since: datetime) -> list[ReceivedEvent]:
    """The ``orchestrator.run.completed`` events of one run, read back through the API."""
    filter = EventFilter(
        occurred=EventOccurredFilter(since=since, until=utc_now() + timedelta(minutes=1)),
        event=EventNameFilter(name=[RUN_COMPLETED_EVENT]),
        resource=EventResourceFilter(id=[run_resource_id(manifest.task_id, manifest.run_id)]),
    )
    async with get_client() as client:
        return (await client.read_events(filter=filter, limit=50)).events


async def flow_run_completed(flow_run_id: str, since: datetime) -> list[ReceivedEvent]:
    """The server's ``prefect.flow-run.Completed`` event of one flow run."""
    filter = EventFilter(
        occurred=EventOccurredFilter(since=since, until=utc_now() + timedelta(minutes=1)),
        event=EventNameFilter(name=["prefect.flow-run.Completed"]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    async with get_client() as client:
        return (await client.read_events(filter=filter, limit=50)).events


async def run_pipeline(**parameters: Any) -> tuple[dict[str, Any], str]:
    """The pipeline's summary and its flow run id."""
    state = await pipeline(return_state=True, **parameters)
    summary: dict[str, Any] = await state.aresult()
    return summary, str(state.state_details.flow_run_id)


def manifest_of(workspace: Workspace, summary: dict[str, Any]) -> RunManifest:
    return workspace.store.read(summary["task_id"], summary["run_id"])


def sync_attempts(workspace: Workspace, run_id: str) -> list[dict[str, Any]]:
    """The ``sync.attempt`` audit lines of one run, in order (their ``detail``)."""
    return [
        event.detail
        for event in workspace.audit.read()
        if event.event == "sync.attempt" and event.run_id == run_id
    ]


def sync_pending_cli(stack: Stack, cloud: OwnRunsApi) -> subprocess.CompletedProcess[str]:
    """``orchestrator sync --pending`` in a subprocess, configured by its environment."""
    env = {
        **os.environ,
        "ORCHESTRATOR_HOME": str(stack.workspace.settings.home),
        "ORCHESTRATOR_CLOUD_URL": cloud.url,
        "ORCHESTRATOR_CLOUD_WORKSPACE": CLOUD_WORKSPACE,
        "ORCHESTRATOR_CLOUD_TOKEN": cloud.token,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "orchestrator"), "sync", "--pending"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_completed_run_emits_its_event_and_is_mirrored_exactly_once(
    stack: Stack, cloud: OwnRunsApi
) -> None:
    since = utc_now() - timedelta(seconds=5)
    summary, flow_run_id = await run_pipeline(
        task_file=str(stack.task(TASK)), repo=str(stack.repo), cloud_block="own-cloud"
    )

    assert (summary["status"], summary["sync"]) == ("succeeded", "synced"), summary
    manifest = manifest_of(stack.workspace, summary)
    assert manifest.sync is not None
    assert (manifest.sync.state, manifest.sync.attempts) == (SyncState.SYNCED, 1)
    assert cloud.run_ids() == [(manifest.sync.cloud_run_id, manifest.run_id)]
    assert [a["outcome"] for a in sync_attempts(stack.workspace, manifest.run_id)] == ["synced"]

    (event,) = await wait_for(lambda: completed_events(manifest, since), bool)
    assert event.resource.id == run_resource_id(manifest.task_id, manifest.run_id)
    assert event.resource["orchestrator.run-id"] == manifest.run_id
    assert event.occurred == manifest.finished_at
    assert event.payload["status"] == "succeeded"
    assert manifest.result is not None
    assert event.payload["result_branch"] == manifest.result.branch
    assert f"prefect.flow-run.{flow_run_id}" in {r.id for r in event.related}

    # Re-running the finished run: no agent call, nothing sent, and still one event.
    requests_before = len(stack.replay.requests())
    again, again_flow_run_id = await run_pipeline(run_id=manifest.run_id, cloud_block="own-cloud")
    assert (again["status"], again["sync"]) == ("succeeded", "synced")
    assert len(stack.replay.requests()) == requests_before
    assert cloud.run_ids() == [(manifest.sync.cloud_run_id, manifest.run_id)]
    assert len(sync_attempts(stack.workspace, manifest.run_id)) == 1
    assert manifest_of(stack.workspace, again).sync == manifest.sync
    # Once the server has stored the re-run's own end, it has seen its re-sent event too.
    await wait_for(lambda: flow_run_completed(again_flow_run_id, since), bool)
    assert len(await completed_events(manifest, since)) == 1


async def test_failed_sync_keeps_the_run_and_sync_pending_sends_it_once(
    stack: Stack, cloud: OwnRunsApi
) -> None:
    cloud.set_faults(fail_next=3, fail_status=503)

    summary, _ = await run_pipeline(
        task_file=str(stack.task(TASK)), repo=str(stack.repo), cloud_block="own-cloud"
    )

    # The run's work stands; the sync says why it failed; every attempt is audited.
    assert (summary["status"], summary["sync"]) == ("succeeded", "failed"), summary
    manifest = manifest_of(stack.workspace, summary)
    assert manifest.status is RunStatus.SUCCEEDED and manifest.result is not None
    assert manifest.sync is not None and manifest.sync.state is SyncState.FAILED
    assert manifest.sync.attempts == 3
    assert "503" in (manifest.sync.last_error or "")
    attempts = sync_attempts(stack.workspace, manifest.run_id)
    assert [(a["outcome"], a["status_code"]) for a in attempts] == [
        ("retry", 503),
        ("retry", 503),
        ("failed", 503),
    ]
    assert cloud.runs() == []

    # `orchestrator sync --pending` sends it once; a second call has nothing to send.
    first = sync_pending_cli(stack, cloud)
    assert first.returncode == 0, first.stdout
    assert "1 synced, 0 failed" in first.stdout
    synced = manifest_of(stack.workspace, summary).sync
    assert synced is not None and synced.state is SyncState.SYNCED and synced.attempts == 4
    assert cloud.run_ids() == [(synced.cloud_run_id, manifest.run_id)]
    second = sync_pending_cli(stack, cloud)
    assert second.returncode == 0, second.stdout
    assert "0 synced, 0 failed" in second.stdout
    assert len(cloud.runs()) == 1
    assert len(sync_attempts(stack.workspace, manifest.run_id)) == 4
    assert manifest_of(stack.workspace, summary).status is RunStatus.SUCCEEDED


async def test_unsent_run_shows_sync_failed_and_the_backlog_flow_sends_it_once(
    stack: Stack, cloud: OwnRunsApi
) -> None:
    # A finished run of another environment: the dev backlog must leave it alone.
    prod_run = create_run(stack.workspace, "prod-task")

    def of_prod(manifest: RunManifest) -> None:
        manifest.env = "prod"

    stack.workspace.store.update(prod_run.task_id, prod_run.run_id, of_prod)

    summary, _ = await run_pipeline(
        task_file=str(stack.task(TASK)), repo=str(stack.repo), cloud_block="no-such-endpoint"
    )

    # No endpoint block: nothing could be sent, and the manifest says so.
    assert (summary["status"], summary["sync"]) == ("succeeded", "failed"), summary
    manifest = manifest_of(stack.workspace, summary)
    assert manifest.sync is not None and manifest.sync.attempts == 0
    assert manifest.sync.last_error is not None
    assert manifest.sync.last_error.startswith("not sent: no CodexCloudEndpoint block named")
    assert "'no-such-endpoint'" in manifest.sync.last_error

    first = await sync_backlog(env="dev", cloud_block="own-cloud")
    assert first == {"synced": 1, "failed": 0, "errors": 0, "other_env": 1}
    synced = manifest_of(stack.workspace, summary).sync
    assert synced is not None and synced.state is SyncState.SYNCED and synced.attempts == 1
    assert cloud.run_ids() == [(synced.cloud_run_id, manifest.run_id)]

    second = await sync_backlog(env="dev", cloud_block="own-cloud")
    assert second == {"synced": 0, "failed": 0, "errors": 0, "other_env": 1}
    assert len(cloud.runs()) == 1
    prod_key = idempotency_key(prod_run.task_id, prod_run.run_id)
    assert ledger_for(stack.workspace).get(prod_key) is None  # never sent with dev's token
