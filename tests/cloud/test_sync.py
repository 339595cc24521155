"""sync_run and sync_pending against ``httpx.MockTransport``: ledger, manifest mirror, backlog."""

from __future__ import annotations

import httpx
import pytest

from orchestrator import InvalidInputError, Workspace
from orchestrator.runs_api import idempotency_key
from orchestrator.sync import ledger_for, record_failure, sync_pending, sync_run
from schemas import RunManifest, RunStatus, SyncState

from .helpers import create_run, mock_client, sync_attempt_lines

TOKEN = "runs-api-token-0123456789abcdef"


class FakeApi:
    """Answers imports from a script of status codes (200 → a fresh id); counts requests."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            return httpx.Response(200, json={"id": f"cloud-{len(self.requests)}"})
        return httpx.Response(status, json={"detail": f"status {status}"})


def _work(manifest: RunManifest) -> dict[str, object]:
    """The run's own content: everything but the sync mirror and the write time."""
    return manifest.model_dump(exclude={"sync", "updated_at"})


def test_a_run_is_synced_and_the_manifest_says_so(workspace: Workspace) -> None:
    run = create_run(workspace)
    api = FakeApi()
    with mock_client(api, token=TOKEN, audit=workspace.audit) as client:
        record = sync_run(workspace, client, run.task_id, run.run_id)
    assert (record.state, record.attempts, record.cloud_run_id) == (SyncState.SYNCED, 1, "cloud-1")
    manifest = workspace.store.read(run.task_id, run.run_id)
    assert manifest.sync == record
    assert ledger_for(workspace).get(record.key) == record
    events = [e.event for e in workspace.audit.read()]
    assert events[-2:] == ["sync.attempt", "sync.updated"]


def test_a_synced_run_is_never_sent_again(workspace: Workspace) -> None:
    run = create_run(workspace)
    api = FakeApi()
    with mock_client(api, token=TOKEN) as client:
        first = sync_run(workspace, client, run.task_id, run.run_id)
        second = sync_run(workspace, client, run.task_id, run.run_id)
        summary = sync_pending(workspace, client)
    assert second == first and len(api.requests) == 1
    assert (summary.synced, summary.failed, summary.errors) == ([], [], [])


def test_a_failed_sync_keeps_the_run_and_records_the_reason(workspace: Workspace) -> None:
    run = create_run(workspace)
    api = FakeApi(503, 503, 503)
    with mock_client(api, token=TOKEN, audit=workspace.audit) as client:
        record = sync_run(workspace, client, run.task_id, run.run_id)
    assert (record.state, record.attempts) == (SyncState.FAILED, 3)
    assert record.last_error is not None and "HTTP 503" in record.last_error
    manifest = workspace.store.read(run.task_id, run.run_id)
    assert manifest.sync == record
    assert manifest.status is RunStatus.SUCCEEDED
    assert _work(manifest) == _work(run)
    assert len(sync_attempt_lines(workspace.audit)) == 3


def test_a_rejected_sync_is_tried_once(workspace: Workspace) -> None:
    run = create_run(workspace)
    api = FakeApi(401)
    with mock_client(api, token=TOKEN) as client:
        record = sync_run(workspace, client, run.task_id, run.run_id)
    assert (record.state, record.attempts, len(api.requests)) == (SyncState.FAILED, 1, 1)
    assert record.last_error is not None and "HTTP 401" in record.last_error


def test_an_unfinished_run_is_not_mirrored(workspace: Workspace) -> None:
    run = create_run(workspace, status=RunStatus.RUNNING)
    api = FakeApi()
    with mock_client(api, token=TOKEN) as client, pytest.raises(InvalidInputError):
        sync_run(workspace, client, run.task_id, run.run_id)
    assert api.requests == [] and ledger_for(workspace).keys() == []


def test_sync_pending_retries_failed_and_unqueued_finished_runs(workspace: Workspace) -> None:
    failed = create_run(workspace, "task-a")
    unqueued = create_run(workspace, "task-b")
    synced = create_run(workspace, "task-c")
    create_run(workspace, "task-d", status=RunStatus.RUNNING)
    with mock_client(FakeApi(500, 500, 500), token=TOKEN) as client:
        sync_run(workspace, client, failed.task_id, failed.run_id)
    with mock_client(FakeApi(), token=TOKEN) as client:
        sync_run(workspace, client, synced.task_id, synced.run_id)
    api = FakeApi()
    with mock_client(api, token=TOKEN) as client:
        summary = sync_pending(workspace, client)
    assert sorted(r.task_id for r in summary.synced) == ["task-a", "task-b"]
    assert summary.ok and len(api.requests) == 2
    assert {r.headers["x-idempotency-key"] for r in api.requests} == {
        idempotency_key(failed.task_id, failed.run_id),
        idempotency_key(unqueued.task_id, unqueued.run_id),
    }


def test_sync_pending_reports_a_corrupt_ledger_file_and_goes_on(workspace: Workspace) -> None:
    broken = create_run(workspace, "task-a")
    fine = create_run(workspace, "task-b")
    ledger = ledger_for(workspace)
    key = ledger.mark_pending(broken.task_id, broken.run_id).key
    ledger.path(key).write_text("{broken")
    with mock_client(FakeApi(), token=TOKEN) as client:
        summary = sync_pending(workspace, client)
    assert [r.task_id for r in summary.synced] == [fine.task_id]
    assert len(summary.errors) == 1 and "not valid JSON" in summary.errors[0]
    assert ledger.path(key).read_text() == "{broken"


def test_a_lost_manifest_mirror_is_repaired_without_sending(workspace: Workspace) -> None:
    run = create_run(workspace)
    ledger = ledger_for(workspace)
    key = ledger.mark_pending(run.task_id, run.run_id).key
    record = ledger.mark_synced(key, cloud_run_id="cloud-9")
    api = FakeApi()
    with mock_client(api, token=TOKEN) as client:
        assert sync_run(workspace, client, run.task_id, run.run_id) == record
    assert api.requests == []
    assert workspace.store.read(run.task_id, run.run_id).sync == record


def test_a_run_that_could_not_be_sent_says_failed_and_the_backlog_sends_it(
    workspace: Workspace,
) -> None:
    run = create_run(workspace)
    record = record_failure(workspace, run.task_id, run.run_id, error="not sent: no endpoint")
    assert (record.state, record.attempts, record.last_error) == (
        SyncState.FAILED,
        0,
        "not sent: no endpoint",
    )
    assert workspace.store.read(run.task_id, run.run_id).sync == record
    api = FakeApi()
    with mock_client(api, token=TOKEN) as client:
        summary = sync_pending(workspace, client)
    assert [(r.state, r.attempts) for r in summary.synced] == [(SyncState.SYNCED, 1)]
    synced = summary.synced[0]
    assert record_failure(workspace, run.task_id, run.run_id, error="late") == synced
    assert workspace.store.read(run.task_id, run.run_id).sync == synced


def test_sync_pending_for_one_env_leaves_the_other_envs_runs_alone(workspace: Workspace) -> None:
    dev = create_run(workspace, "task-dev")
    prod = create_run(workspace, "task-prod")

    def of_prod(manifest: RunManifest) -> None:
        manifest.env = "prod"

    workspace.store.update(prod.task_id, prod.run_id, of_prod)
    api = FakeApi()
    with mock_client(api, token=TOKEN) as client:
        summary = sync_pending(workspace, client, env="dev")
    assert [r.task_id for r in summary.synced] == [dev.task_id] and len(api.requests) == 1
    assert summary.other_env == [f"{prod.task_id}/{prod.run_id} (prod)"]
    assert ledger_for(workspace).get(idempotency_key(prod.task_id, prod.run_id)) is None
