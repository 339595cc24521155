"""Issue 8's acceptance points, over real HTTP against the reference server."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator import Workspace
from orchestrator.cli import _cloud
from orchestrator.runs_api import RunsApiClient, build_import_body, idempotency_key
from orchestrator.sync import ledger_for, sync_pending, sync_run
from schemas import SyncState
from tests.helpers.canary import scan_cmdlines_for, scan_paths_for

from .conftest import CloudServer
from .crash_sync import CRASH_EXIT_CODE
from .helpers import create_run, make_manifest, sync_attempt_lines

pytestmark = pytest.mark.integration

MakeClient = Callable[..., RunsApiClient]
CRASH_SCRIPT = Path(__file__).with_name("crash_sync.py")


def test_happy_path(
    cloud: CloudServer, cloud_workspace_id: str, workspace: Workspace, make_client: MakeClient
) -> None:
    run = create_run(workspace)
    record = sync_run(workspace, make_client(), run.task_id, run.run_id)
    assert (record.state, record.attempts) == (SyncState.SYNCED, 1)
    (stored,) = cloud.runs(cloud_workspace_id)
    assert stored["id"] == record.cloud_run_id
    assert stored["idempotencyKey"] == idempotency_key(run.task_id, run.run_id)
    assert stored["summary"] == build_import_body(run)["summary"]
    full = cloud.http.get(f"/workspaces/{cloud_workspace_id}/runs/{stored['id']}").json()
    assert full["manifest"] == build_import_body(run)["manifest"]
    assert workspace.store.read(run.task_id, run.run_id).sync == record


def test_two_failures_then_success_take_three_attempts_and_three_audit_lines(
    cloud: CloudServer, cloud_workspace_id: str, workspace: Workspace, make_client: MakeClient
) -> None:
    cloud.set_faults(fail_next=2, fail_status=500)
    run = create_run(workspace)
    record = sync_run(workspace, make_client(), run.task_id, run.run_id)
    assert (record.state, record.attempts) == (SyncState.SYNCED, 3)
    lines = sync_attempt_lines(workspace.audit)
    assert [line["detail"]["attempt"] for line in lines] == [1, 2, 3]
    assert [line["detail"]["status_code"] for line in lines] == [500, 500, 200]
    assert [line["detail"]["outcome"] for line in lines] == ["retry", "retry", "synced"]
    assert len(cloud.runs(cloud_workspace_id)) == 1


def test_three_failures_fail_then_sync_pending_succeeds_once(
    cloud: CloudServer,
    cloud_workspace_id: str,
    cloud_env: dict[str, str],
    workspace: Workspace,
    make_client: MakeClient,
) -> None:
    cloud.set_faults(fail_next=3, fail_status=503)
    run = create_run(workspace)
    failed = sync_run(workspace, make_client(), run.task_id, run.run_id)
    assert (failed.state, failed.attempts) == (SyncState.FAILED, 3)
    manifest = workspace.store.read(run.task_id, run.run_id)
    assert manifest.sync is not None and manifest.sync.state is SyncState.FAILED
    assert manifest.sync.last_error is not None and "HTTP 503" in manifest.sync.last_error
    assert manifest.status == run.status and manifest.artifacts == run.artifacts
    assert cloud.runs(cloud_workspace_id) == []

    app = typer.Typer()
    _cloud.register(app)
    result = CliRunner().invoke(app, ["sync", "--pending"], env=cloud_env)
    assert result.exit_code == 0, result.output
    assert "1 synced, 0 failed" in result.output

    (stored,) = cloud.runs(cloud_workspace_id)
    synced = ledger_for(workspace).get(failed.key)
    assert synced is not None and synced.state is SyncState.SYNCED and synced.attempts == 4
    assert synced.cloud_run_id == stored["id"]
    assert workspace.store.read(run.task_id, run.run_id).sync == synced


def test_retry_after_is_honoured(
    cloud: CloudServer, cloud_workspace_id: str, workspace: Workspace, make_client: MakeClient
) -> None:
    cloud.set_faults(fail_next=1, fail_status=429, retry_after=1)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    run = create_run(workspace)
    record = sync_run(workspace, make_client(sleep=sleep), run.task_id, run.run_id)
    assert (record.state, record.attempts) == (SyncState.SYNCED, 2)
    assert waits == [1.0]
    first, second = sync_attempt_lines(workspace.audit)
    assert (first["detail"]["status_code"], first["detail"]["retry_after"]) == (429, 1.0)
    gap = datetime.fromisoformat(second["ts"]) - datetime.fromisoformat(first["ts"])
    assert gap.total_seconds() >= 1.0
    assert len(cloud.runs(cloud_workspace_id)) == 1


def test_401_is_not_retried(
    cloud: CloudServer, cloud_workspace_id: str, workspace: Workspace, make_client: MakeClient
) -> None:
    wrong = f"wrong-canary-{secrets.token_hex(12)}"
    run = create_run(workspace)
    record = sync_run(workspace, make_client(token=wrong), run.task_id, run.run_id)
    assert (record.state, record.attempts) == (SyncState.FAILED, 1)
    assert record.last_error is not None and "HTTP 401" in record.last_error
    (line,) = sync_attempt_lines(workspace.audit)
    assert (line["detail"]["status_code"], line["detail"]["retryable"]) == (401, False)
    assert cloud.runs(cloud_workspace_id) == []
    assert not scan_paths_for(wrong, [workspace.settings.home])


def test_a_crash_between_server_commit_and_ledger_write_leaves_one_record(
    cloud: CloudServer,
    cloud_workspace_id: str,
    cloud_env: dict[str, str],
    workspace: Workspace,
    make_client: MakeClient,
) -> None:
    run = create_run(workspace)
    crashed = subprocess.run(
        [sys.executable, str(CRASH_SCRIPT), run.task_id, run.run_id],
        env={**os.environ, **cloud_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    (committed,) = cloud.runs(cloud_workspace_id)
    key = idempotency_key(run.task_id, run.run_id)
    queued = ledger_for(workspace).get(key)
    assert queued is not None and queued.state is SyncState.PENDING
    assert queued.cloud_run_id is None

    summary = sync_pending(workspace, make_client())
    assert [r.cloud_run_id for r in summary.synced] == [committed["id"]]
    assert summary.ok
    assert [r["id"] for r in cloud.runs(cloud_workspace_id)] == [committed["id"]]


def test_a_dropped_answer_after_commit_is_retried_into_the_same_record(
    cloud: CloudServer, cloud_workspace_id: str, workspace: Workspace, make_client: MakeClient
) -> None:
    cloud.set_faults(drop_after_commit=1)
    run = create_run(workspace)
    record = sync_run(workspace, make_client(), run.task_id, run.run_id)
    assert (record.state, record.attempts) == (SyncState.SYNCED, 2)
    first, _ = sync_attempt_lines(workspace.audit)
    assert first["detail"]["status_code"] is None and "connection" in first["detail"]["error"]
    assert [r["id"] for r in cloud.runs(cloud_workspace_id)] == [record.cloud_run_id]


def test_a_dropped_last_attempt_is_not_a_conflict_later(
    cloud: CloudServer, cloud_workspace_id: str, workspace: Workspace, make_client: MakeClient
) -> None:
    """The failed sync changes the manifest (sync, updated_at); the re-send body does not."""
    cloud.set_faults(fail_next=2, drop_after_commit=1)
    run = create_run(workspace)
    failed = sync_run(workspace, make_client(), run.task_id, run.run_id)
    assert failed.state is SyncState.FAILED
    (committed,) = cloud.runs(cloud_workspace_id)
    summary = sync_pending(workspace, make_client())
    assert [r.cloud_run_id for r in summary.synced] == [committed["id"]]


def test_a_timeout_is_retried_and_the_late_commit_is_not_a_duplicate(
    cloud: CloudServer, cloud_workspace_id: str, workspace: Workspace, make_client: MakeClient
) -> None:
    delay = 0.6
    cloud.set_faults(delay=delay, delay_next=1)
    run = create_run(workspace)
    started = time.monotonic()
    record = sync_run(workspace, make_client(timeout=0.2), run.task_id, run.run_id)
    assert (record.state, record.attempts) == (SyncState.SYNCED, 2)
    first, _ = sync_attempt_lines(workspace.audit)
    assert "timed out" in first["detail"]["error"]
    # The server exposes no event for its delayed request; wait out the delay it
    # was given, then check that its late commit found the key taken.
    time.sleep(max(0.0, started + delay + 0.2 - time.monotonic()))
    assert [r["id"] for r in cloud.runs(cloud_workspace_id)] == [record.cloud_run_id]


def test_a_thousand_runs_with_a_fifth_failing_are_stored_exactly_once(
    cloud: CloudServer,
    cloud_workspace_id: str,
    workspace: Workspace,
    make_client: MakeClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = [make_manifest(f"task-{n % 10}", f"run-{n:04d}") for n in range(1000)]
    for manifest in runs:
        workspace.store.create(manifest)
    cloud.set_faults(fail_rate=0.1, drop_rate=0.1, fail_status=503, seed=2026)
    client = make_client()
    ledger = ledger_for(workspace)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(
            pool.map(
                lambda m: sync_run(workspace, client, m.task_id, m.run_id, ledger=ledger), runs
            )
        )
    failed_first = sum(r.state is SyncState.FAILED for r in first)
    for _ in range(5):
        if not sync_pending(workspace, client, ledger=ledger).failed:
            break
    elapsed = time.perf_counter() - started

    stored = cloud.runs(cloud_workspace_id)
    assert len(stored) == 1000
    assert len({s["idempotencyKey"] for s in stored}) == 1000
    assert {(s["summary"]["taskId"], s["summary"]["runId"]) for s in stored} == {
        (m.task_id, m.run_id) for m in runs
    }
    records = ledger.list_records()
    assert len(records) == 1000 and all(r.state is SyncState.SYNCED for r in records)
    assert {r.cloud_run_id for r in records} == {s["id"] for s in stored}
    attempts = sum(r.attempts for r in records)
    assert attempts > 1100  # about a fifth of the attempts met a fault
    with capsys.disabled():
        print(
            f"\n1000 runs, 20% faults: {attempts} attempts, {failed_first} failed the first "
            f"pass, {elapsed:.2f} s, {1000 / elapsed:.0f} syncs/s"
        )


def test_the_token_is_in_no_audit_line_manifest_ledger_log_or_command_line(
    cloud: CloudServer,
    cloud_workspace_id: str,
    workspace: Workspace,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ok, failing, dropped = (create_run(workspace, f"task-{n}") for n in range(3))
    client = make_client()
    sync_run(workspace, client, ok.task_id, ok.run_id)
    cloud.set_faults(fail_next=3, fail_status=500)
    sync_run(workspace, client, failing.task_id, failing.run_id)
    cloud.set_faults(drop_after_commit=1)
    sync_run(workspace, client, dropped.task_id, dropped.run_id)
    sync_pending(workspace, client)

    assert len(sync_attempt_lines(workspace.audit)) == 7
    places = [workspace.settings.runs_dir, workspace.settings.out_dir, cloud.log_path.parent]
    assert not scan_paths_for(cloud.token, places)
    assert not scan_cmdlines_for(cloud.token)
    assert cloud.token not in caplog.text
    assert "HTTP Request" in caplog.text  # httpx did log, without the token
