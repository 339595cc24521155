"""The ledger and the manifest agree when a mirror fails part-way: neither says ``synced``
unless both do (a full disk between the writes, an error after the manifest's write, a
Runs API that is down)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from devstack.runs_api import spawn_server
from orchestrator import StorageError, Workspace, runstore
from orchestrator.runs_api import IDEMPOTENCY_HEADER, idempotency_key
from orchestrator.sync import ledger_for, sync_pending, sync_run
from schemas import RunManifest, SyncRecord, SyncState

from .helpers import create_run, mock_client

TOKEN = "runs-api-token-0123456789abcdef"


class IdempotentApi:
    """Answers every import 200 with one id per idempotency key, as the real server does;
    the first ``failures`` answers are 503."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.ids: dict[str, str] = {}
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.failures:
            self.failures -= 1
            return httpx.Response(503, json={"error": {"code": "server_error", "message": "x"}})
        key = request.headers[IDEMPOTENCY_HEADER]
        run_id = self.ids.setdefault(key, f"cloud-{len(self.ids) + 1}")
        return httpx.Response(200, json={"id": run_id})


def _disk_full_for(monkeypatch: pytest.MonkeyPatch, hit: Callable[[Path], bool]) -> None:
    """Writes of the files ``hit`` picks fail as a full disk would (ENOSPC), at the layer
    every manifest and ledger write goes through."""
    real = runstore.stage_write

    def stage_write(path: Path, data: bytes) -> Path:
        if hit(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(runstore, "stage_write", stage_write)


def _states(workspace: Workspace, run: RunManifest) -> tuple[SyncRecord | None, SyncRecord | None]:
    """(the ledger's record, the manifest's copy) of ``run``."""
    ledger = ledger_for(workspace).get(idempotency_key(run.task_id, run.run_id))
    return ledger, workspace.store.read(run.task_id, run.run_id).sync


def _synced(record: SyncRecord | None) -> bool:
    return record is not None and record.state is SyncState.SYNCED


def _no_staged_files(workspace: Workspace) -> list[str]:
    return sorted(p.name for p in workspace.store.root.rglob(".*.tmp"))


def test_a_full_disk_at_the_manifest_write_leaves_neither_synced(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = create_run(workspace)
    api = IdempotentApi()
    _disk_full_for(monkeypatch, lambda path: path.name == runstore.MANIFEST_NAME)
    with mock_client(api, token=TOKEN) as client, pytest.raises(StorageError) as raised:
        sync_run(workspace, client, run.task_id, run.run_id)
    assert str(raised.value).startswith("cannot write the manifest at ")
    assert str(raised.value).endswith(": the disk is full")
    ledger, manifest = _states(workspace, run)
    assert ledger is not None and ledger.state is SyncState.PENDING and manifest is None
    assert _no_staged_files(workspace) == []

    monkeypatch.undo()  # space again: the backlog sends it once more, the server replays
    with mock_client(api, token=TOKEN) as client:
        summary = sync_pending(workspace, client)
    ledger, manifest = _states(workspace, run)
    assert summary.ok and _synced(ledger) and manifest == ledger
    assert ledger is not None and ledger.cloud_run_id == "cloud-1" and api.requests == 2


def test_a_full_disk_at_the_ledger_write_leaves_neither_synced(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = create_run(workspace)
    ledger_dir = ledger_for(workspace).root
    pending = ledger_for(workspace).mark_pending(run.task_id, run.run_id)
    # Full from now on for the ledger: its synced record cannot be staged.
    _disk_full_for(monkeypatch, lambda path: path.parent == ledger_dir)
    with mock_client(IdempotentApi(), token=TOKEN) as client, pytest.raises(StorageError) as raised:
        sync_run(workspace, client, run.task_id, run.run_id)
    assert str(raised.value).startswith("cannot write the sync ledger at ")
    ledger, manifest = _states(workspace, run)
    assert ledger is not None and ledger.state is SyncState.PENDING and manifest is None
    assert ledger.key == pending.key and _no_staged_files(workspace) == []


def test_an_error_after_the_manifest_said_synced_still_commits_the_ledger(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest is written, then its audit line fails: the ledger must say synced too."""
    run = create_run(workspace)
    audit = workspace.store.audit
    real_append = audit.append

    def append(event: str, **detail: object) -> object:
        if event == "sync.updated":
            raise StorageError("cannot write the audit log at x: the disk is full", path="x")
        return real_append(event, **detail)

    monkeypatch.setattr(audit, "append", append)
    with mock_client(IdempotentApi(), token=TOKEN) as client, pytest.raises(StorageError):
        sync_run(workspace, client, run.task_id, run.run_id)
    ledger, manifest = _states(workspace, run)
    assert _synced(manifest) and manifest == ledger
    assert _no_staged_files(workspace) == []


def test_a_failed_sync_whose_manifest_cannot_be_written_says_failed_in_neither_place_synced(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = create_run(workspace)
    _disk_full_for(monkeypatch, lambda path: path.name == runstore.MANIFEST_NAME)
    with mock_client(IdempotentApi(failures=3), token=TOKEN) as client:
        with pytest.raises(StorageError):
            sync_run(workspace, client, run.task_id, run.run_id)
    ledger, manifest = _states(workspace, run)
    assert ledger is not None and ledger.state is SyncState.FAILED and manifest is None


@pytest.mark.integration
def test_sync_with_the_runs_api_down_is_one_clear_error(
    workspace: Workspace, tmp_path: Path
) -> None:
    run = create_run(workspace)
    server = spawn_server(
        db_path=tmp_path / "runs.sqlite3", token=TOKEN, log_path=tmp_path / "server.log"
    )
    url = server.url
    server.stop()  # its port is now closed: connection refused
    env = {
        **os.environ,
        "ORCHESTRATOR_HOME": str(workspace.settings.home),
        "ORCHESTRATOR_CLOUD_URL": url,
        "ORCHESTRATOR_CLOUD_WORKSPACE": "ws",
        "ORCHESTRATOR_CLOUD_TOKEN": TOKEN,
        "COLUMNS": "200",
    }
    orchestrator = Path(sys.executable).with_name("orchestrator")
    result = subprocess.run(
        [str(orchestrator), "sync", run.run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "Runs API connection failed (ConnectError" in output and "attempt 3 of 3" in output
    ledger, manifest = _states(workspace, run)
    assert ledger is not None and ledger.state is SyncState.FAILED and ledger.attempts == 3
    assert manifest == ledger
