"""The local sync ledger: one record per run saying whether the Runs API holds it.

One JSON file per idempotency key, ``.runs/_ledger/<key>.json``, holding a
:class:`schemas.SyncRecord`. Every change is read-modify-write under the file's
lock and written atomically; every read and write is checked against the
``sync-record`` schema, and a file that fails the check is left untouched.
Safe ids cannot start with ``_``, so the folder never clashes with a task folder.

The ledger is the source of truth for "sent or not": a record once ``synced``
stays synced, so a run is never sent again.

:meth:`SyncLedger.staging_synced` lets the caller write the manifest's copy of a
``synced`` record between staging the ledger's file (the write that needs space) and
putting it in place (a rename, which does not): so a full disk or an error never leaves
one of the two saying ``synced`` without the other.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from schemas import SyncRecord, SyncState, utc_now

from ._disk import disk_errors
from .exceptions import InvalidInputError, ManifestCorruptError
from .redaction import Redactor, get_redactor
from .runs_api import idempotency_key
from .runstore import (
    commit_staged,
    discard_staged,
    load_document,
    locked,
    safe_id,
    stage_document,
    write_document,
)

LEDGER_DIR_NAME = "_ledger"
_KEY = re.compile(r"^[0-9a-f]{64}$")

Change = Callable[[SyncRecord], SyncRecord]
_WHAT = "the sync ledger"


class StagedRecord:
    """A ledger record written beside its file, waiting for :meth:`commit`."""

    def __init__(self, record: SyncRecord, staged: Path | None, path: Path) -> None:
        self.record = record
        self._staged = staged
        self._path = path

    def commit(self) -> SyncRecord:
        """Put the record in place (a rename); committing twice does nothing."""
        if self._staged is not None:
            with disk_errors(_WHAT, self._path):
                commit_staged(self._staged, self._path)
            self._staged = None
        return self.record

    def discard(self) -> None:
        if self._staged is not None:
            discard_staged(self._staged)
            self._staged = None


class SyncLedger:
    """Sync records under ``<runs_dir>/_ledger/``; safe for many threads and processes."""

    def __init__(
        self, runs_dir: Path, *, lock_timeout: float = 60.0, redactor: Redactor | None = None
    ) -> None:
        self.root = Path(runs_dir) / LEDGER_DIR_NAME
        self.lock_timeout = lock_timeout
        self._redactor = redactor

    def path(self, key: str) -> Path:
        """The file of ``key``; the key must be a lowercase hex sha256."""
        if not _KEY.fullmatch(key):
            raise InvalidInputError(f"{key!r} is not a sync key (lowercase hex sha256)")
        return self.root / f"{key}.json"

    # -- reading -------------------------------------------------------------------

    def get(self, key: str) -> SyncRecord | None:
        """The record of ``key``, or None when the run was never queued.

        Raises:
            ManifestCorruptError: The file does not parse or validate (it is left as is).
        """
        return _load(self.path(key))

    def keys(self) -> list[str]:
        """Every key in the ledger, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if _KEY.fullmatch(p.stem))

    def list_records(self, *, states: Collection[SyncState] | None = None) -> list[SyncRecord]:
        """Every record (in ``states`` when given), by task id then run id.

        Raises:
            ManifestCorruptError: A ledger file does not parse or validate.
        """
        records = [r for r in map(self.get, self.keys()) if r is not None]
        chosen = [r for r in records if states is None or r.state in states]
        return sorted(chosen, key=lambda r: (r.task_id, r.run_id))

    # -- changing ------------------------------------------------------------------

    def mark_pending(self, task_id: str, run_id: str) -> SyncRecord:
        """Queue a run: create its record, or move a failed one back to pending.

        A pending or synced record is returned unchanged.
        """
        task_id = safe_id(task_id, what="task id")
        run_id = safe_id(run_id, what="run id")
        key = idempotency_key(task_id, run_id)
        with self._locked(key):
            current = self.get(key)
            if current is None:
                new = SyncRecord(key=key, task_id=task_id, run_id=run_id, updated_at=utc_now())
                return self._write(new)
            if current.state is SyncState.FAILED:
                return self._write(_copy(current, state=SyncState.PENDING))
            return current

    def record_attempt(self, key: str, *, error: str | None = None) -> SyncRecord:
        """Count one attempt to send the run, with its error (None when it succeeded)."""
        return self._change(key, lambda r: _copy(r, attempts=r.attempts + 1, last_error=error))

    def mark_synced(self, key: str, *, cloud_run_id: str) -> SyncRecord:
        """The Runs API holds the run as ``cloud_run_id``; it is never sent again."""
        return self._change(key, _synced(cloud_run_id))

    @contextlib.contextmanager
    def staging_synced(self, key: str, *, cloud_run_id: str) -> Iterator[StagedRecord]:
        """Stage the ``synced`` record of ``key`` under its lock; commit it in the block.

        The block writes whatever must agree with the ledger (the manifest) and then
        calls :meth:`StagedRecord.commit`; a staged record not committed when the block
        ends (it raised) is thrown away, and the ledger says what it said before. A
        record already synced is yielded committed.

        Raises:
            StorageError: the record could not be staged (e.g. the disk is full).
        """
        path = self.path(key)
        with self._locked(key):
            current = self._require(key)
            if current.state is SyncState.SYNCED:
                yield StagedRecord(current, None, path)
                return
            data = self._data(_synced(cloud_run_id)(current))
            with disk_errors(_WHAT, path):
                staged_path, record = stage_document(path, data, SyncRecord, schema="sync-record")
            staged = StagedRecord(record, staged_path, path)
            try:
                yield staged
            finally:
                staged.discard()

    def mark_failed(self, key: str, *, error: str) -> SyncRecord:
        """The run could not be sent this time; ``sync --pending`` will try again."""
        return self._change(key, lambda r: _copy(r, state=SyncState.FAILED, last_error=error))

    # -- internals -----------------------------------------------------------------

    def _change(self, key: str, change: Change) -> SyncRecord:
        """Apply ``change`` under the lock; a synced record is never changed again."""
        with self._locked(key):
            current = self._require(key)
            if current.state is SyncState.SYNCED:
                return current
            return self._write(change(current))

    def _require(self, key: str) -> SyncRecord:
        current = self.get(key)
        if current is None:
            raise InvalidInputError(f"no sync record for key {key}; queue the run first")
        return current

    def _locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        path = self.path(key)
        with disk_errors(_WHAT, path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        return locked(path, timeout=self.lock_timeout)

    def _data(self, record: SyncRecord) -> dict[str, Any]:
        data = _copy(record, updated_at=utc_now()).model_dump(mode="json")
        if data["last_error"] is not None:
            data["last_error"] = (self._redactor or get_redactor()).redact(data["last_error"])
        return data

    def _write(self, record: SyncRecord) -> SyncRecord:
        path = self.path(record.key)
        with disk_errors(_WHAT, path):
            return write_document(path, self._data(record), SyncRecord, schema="sync-record")


def _synced(cloud_run_id: str) -> Change:
    now = utc_now()

    def synced(record: SyncRecord) -> SyncRecord:
        return _copy(
            record,
            state=SyncState.SYNCED,
            cloud_run_id=cloud_run_id,
            last_error=None,
            synced_at=now,
        )

    return synced


def _copy(record: SyncRecord, **changes: object) -> SyncRecord:
    return record.model_copy(update=changes)


def _load(path: Path) -> SyncRecord | None:
    if not path.exists():
        return None
    record = load_document(path, SyncRecord, schema="sync-record")
    if path.stem != record.key:
        raise ManifestCorruptError("sync record key does not match its file name", path=str(path))
    return record
