"""The sync ledger: one locked, atomic, schema-checked file per run under ``.runs/_ledger/``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator import InvalidInputError, ManifestCorruptError, Redactor, Workspace
from orchestrator.runs_api import idempotency_key
from orchestrator.sync_ledger import SyncLedger
from schemas import SyncState, schema_errors

from .helpers import create_run


@pytest.fixture
def ledger(tmp_path: Path) -> SyncLedger:
    return SyncLedger(tmp_path / ".runs", lock_timeout=10)


def test_a_record_goes_pending_failed_pending_synced(ledger: SyncLedger) -> None:
    record = ledger.mark_pending("task-a", "run-1")
    assert record.key == idempotency_key("task-a", "run-1")
    assert (record.state, record.attempts, record.cloud_run_id) == (SyncState.PENDING, 0, None)
    ledger.record_attempt(record.key, error="HTTP 503")
    failed = ledger.mark_failed(record.key, error="HTTP 503 (attempt 1 of 1)")
    assert (failed.state, failed.attempts, failed.last_error) == (
        SyncState.FAILED,
        1,
        "HTTP 503 (attempt 1 of 1)",
    )
    again = ledger.mark_pending("task-a", "run-1")
    assert (again.state, again.attempts) == (SyncState.PENDING, 1)
    ledger.record_attempt(record.key)
    synced = ledger.mark_synced(record.key, cloud_run_id="cloud-1")
    assert (synced.state, synced.attempts, synced.cloud_run_id) == (SyncState.SYNCED, 2, "cloud-1")
    assert synced.last_error is None and synced.synced_at is not None
    assert ledger.get(record.key) == synced


def test_a_synced_record_never_changes_again(ledger: SyncLedger) -> None:
    key = ledger.mark_pending("task-a", "run-1").key
    synced = ledger.mark_synced(key, cloud_run_id="cloud-1")
    assert ledger.mark_pending("task-a", "run-1") == synced
    assert ledger.record_attempt(key, error="late") == synced
    assert ledger.mark_failed(key, error="late") == synced
    assert ledger.mark_synced(key, cloud_run_id="other") == synced


def test_the_file_is_schema_valid_json_under_the_ledger_folder(workspace: Workspace) -> None:
    record = SyncLedger(workspace.store.root).mark_pending("task-a", "run-1")
    path = workspace.store.root / "_ledger" / f"{record.key}.json"
    assert schema_errors("sync-record", json.loads(path.read_text())) is None
    create_run(workspace, "task-a")
    assert [ref.task_id for ref in workspace.store.list_runs()] == ["task-a"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"key": "short"}',
        b"\xff\xfe",
    ],
)
def test_a_corrupt_file_raises_and_is_left_untouched(ledger: SyncLedger, content: bytes) -> None:
    key = ledger.mark_pending("task-a", "run-1").key
    path = ledger.path(key)
    path.write_bytes(content)
    for call in (
        lambda: ledger.get(key),
        lambda: ledger.record_attempt(key, error="x"),
        lambda: ledger.mark_pending("task-a", "run-1"),
        lambda: ledger.list_records(),
    ):
        with pytest.raises(ManifestCorruptError):
            call()
    assert path.read_bytes() == content


def test_a_record_under_another_key_is_corrupt(ledger: SyncLedger) -> None:
    record = ledger.mark_pending("task-a", "run-1")
    other = ledger.path(idempotency_key("task-b", "run-2"))
    other.write_text(ledger.path(record.key).read_text())
    with pytest.raises(ManifestCorruptError, match="file name"):
        ledger.get(idempotency_key("task-b", "run-2"))


def test_list_records_filters_by_state(ledger: SyncLedger) -> None:
    pending = ledger.mark_pending("task-a", "run-1")
    failed = ledger.mark_pending("task-a", "run-2")
    ledger.mark_failed(failed.key, error="x")
    synced = ledger.mark_pending("task-b", "run-3")
    ledger.mark_synced(synced.key, cloud_run_id="c")
    retry = ledger.list_records(states={SyncState.PENDING, SyncState.FAILED})
    assert [r.run_id for r in retry] == ["run-1", "run-2"]
    assert [r.key for r in ledger.list_records(states={SyncState.SYNCED})] == [synced.key]
    assert len(ledger.list_records()) == 3
    assert ledger.keys() == sorted([pending.key, failed.key, synced.key])


def test_no_attempt_is_lost_under_concurrent_writers(ledger: SyncLedger) -> None:
    key = ledger.mark_pending("task-a", "run-1").key
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: ledger.record_attempt(key, error=f"e{n}"), range(200)))
    record = ledger.get(key)
    assert record is not None and record.attempts == 200


def test_bad_keys_and_unknown_records_are_refused(ledger: SyncLedger) -> None:
    with pytest.raises(InvalidInputError):
        ledger.get("../../etc/passwd")
    with pytest.raises(InvalidInputError):
        ledger.record_attempt(idempotency_key("task-a", "never-queued"))
    with pytest.raises(InvalidInputError):
        ledger.mark_pending("../up", "run-1")
    assert ledger.keys() == []


def test_the_last_error_is_redacted(tmp_path: Path) -> None:
    redactor = Redactor()
    redactor.register("s3cr3t-value-123")
    ledger = SyncLedger(tmp_path, redactor=redactor)
    key = ledger.mark_pending("task-a", "run-1").key
    record = ledger.mark_failed(key, error="server said s3cr3t-value-123")
    assert record.last_error == "server said ***"
    assert "s3cr3t-value-123" not in ledger.path(key).read_text()
