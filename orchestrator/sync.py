"""Mirroring runs to the Runs API: the plain functions the cloud-sync flow wraps.

:func:`sync_run` sends one run unless the ledger says it is synced, records every
attempt in the ledger, and mirrors the resulting :class:`schemas.SyncRecord` into
the run's manifest (event ``sync.updated``). A failed sync changes nothing else: the
run's work stays as it is and the manifest says ``sync: failed`` with the reason.
:func:`record_failure` does the same for a run that could not be sent at all (no
endpoint configured, no token), so that failure shows on the run too.

Crash safety: the record is queued (``pending``) before anything is sent. If the
process dies after the server committed but before the ledger says ``synced``, the
next :func:`sync_pending` sends the same body with the same idempotency key, and
the server answers with the run it already holds: still one record.

The ledger and the manifest agree: neither says ``synced`` unless both do. Once the
server holds the run, the ledger's ``synced`` record is staged (the write that needs
disk space), then the manifest is written, then the staged record is renamed into
place. A failure before the manifest is written (a full disk, an error) leaves both as
they were, ``pending``/not synced, and is raised as one :class:`StorageError`; the
backlog sends the run again and the server answers from its idempotency store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas import RunManifest, SyncRecord, SyncState

from .exceptions import InvalidInputError, ManifestCorruptError, OrchestratorError, SyncError
from .runs_api import Attempt, RunsApiClient, idempotency_key
from .sync_ledger import SyncLedger
from .workspace import Workspace

RETRY_STATES = frozenset({SyncState.PENDING, SyncState.FAILED})


@dataclass(frozen=True)
class SyncSummary:
    """What :func:`sync_pending` did."""

    synced: list[SyncRecord] = field(default_factory=list)
    failed: list[SyncRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Runs that could not be tried (a corrupt file, a missing run), one line each."""
    other_env: list[str] = field(default_factory=list)
    """``task/run (env)`` of runs left for their own environment's backlog."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors


def ledger_for(workspace: Workspace) -> SyncLedger:
    """The sync ledger under the workspace's ``.runs/``."""
    return SyncLedger(
        workspace.store.root,
        lock_timeout=workspace.store.lock_timeout,
        redactor=workspace.redactor,
    )


def sync_run(
    workspace: Workspace,
    client: RunsApiClient,
    task_id: str,
    run_id: str,
    *,
    ledger: SyncLedger | None = None,
) -> SyncRecord:
    """Mirror one run unless it is already synced; returns its sync record.

    A failed import is not raised: the record (and the manifest) say ``failed`` with
    the reason.

    Raises:
        InvalidInputError: The run is not finished (a synced run is never sent again,
            so a run mirrored early would never show its end).
        RunNotFoundError: There is no such run.
        ManifestCorruptError: The manifest or the ledger file is corrupt.
    """
    ledger = ledger or ledger_for(workspace)
    manifest = _finished(workspace, task_id, run_id)
    record = ledger.get(idempotency_key(task_id, run_id))
    if record is None or record.state is not SyncState.SYNCED:
        return _send(workspace, ledger, client, manifest)
    _mirror(workspace, manifest, record)  # a ledger synced before the manifest was: repair
    return record


def sync_pending(
    workspace: Workspace,
    client: RunsApiClient,
    *,
    env: str | None = None,
    ledger: SyncLedger | None = None,
) -> SyncSummary:
    """Retry every run the ledger holds as pending or failed, and every finished run
    it does not hold yet (the backlog a crash or an outage left behind).

    Args:
        env: Only runs of this environment; the others are listed in
            ``other_env`` and left alone. A client built from one environment's
            credentials (its Vault secret's token) passes that environment, so no
            run is ever sent with another environment's token. None: every run.
    """
    ledger = ledger or ledger_for(workspace)
    summary = SyncSummary()
    for task_id, run_id in _backlog(workspace, ledger, summary.errors):
        if env is not None and not _of_env(workspace, task_id, run_id, env, summary):
            continue
        try:
            record = sync_run(workspace, client, task_id, run_id, ledger=ledger)
        except OrchestratorError as exc:
            summary.errors.append(f"{task_id}/{run_id}: {exc}")
            continue
        (summary.synced if record.state is SyncState.SYNCED else summary.failed).append(record)
    return summary


def record_failure(
    workspace: Workspace,
    task_id: str,
    run_id: str,
    *,
    error: str,
    ledger: SyncLedger | None = None,
) -> SyncRecord:
    """Record that a finished run could not be sent at all (no endpoint, no token).

    The ledger and the manifest say ``failed`` with ``error`` (no attempt is
    counted), so the failure is visible on the run and :func:`sync_pending` retries
    it. A synced record stays synced.

    Raises:
        InvalidInputError: The run is not finished.
        RunNotFoundError: There is no such run.
        ManifestCorruptError: The manifest or the ledger file is corrupt.
    """
    ledger = ledger or ledger_for(workspace)
    manifest = _finished(workspace, task_id, run_id)
    queued = ledger.mark_pending(task_id, run_id)
    record = ledger.mark_failed(queued.key, error=error)
    _mirror(workspace, manifest, record)
    return record


def _finished(workspace: Workspace, task_id: str, run_id: str) -> RunManifest:
    manifest = workspace.store.read(task_id, run_id)
    if not manifest.status.finished:
        raise InvalidInputError(
            f"run {task_id}/{run_id} is {manifest.status.value}; only finished runs are mirrored"
        )
    return manifest


def _of_env(
    workspace: Workspace, task_id: str, run_id: str, env: str, summary: SyncSummary
) -> bool:
    try:
        run_env = workspace.store.read(task_id, run_id).env
    except OrchestratorError as exc:
        summary.errors.append(f"{task_id}/{run_id}: {exc}")
        return False
    if run_env != env:
        summary.other_env.append(f"{task_id}/{run_id} ({run_env})")
    return run_env == env


def _send(
    workspace: Workspace, ledger: SyncLedger, client: RunsApiClient, manifest: RunManifest
) -> SyncRecord:
    """Send the run; the outcome is in the ledger and the manifest (both, or neither)."""
    queued = ledger.mark_pending(manifest.task_id, manifest.run_id)
    if queued.state is SyncState.SYNCED:  # another process finished it meanwhile
        return queued

    def count(attempt: Attempt) -> None:
        ledger.record_attempt(queued.key, error=attempt.error.message if attempt.error else None)

    try:
        result = client.import_run(manifest, on_attempt=count)
    except SyncError as exc:
        record = ledger.mark_failed(queued.key, error=exc.message)
        _mirror(workspace, manifest, record)
        return record
    with ledger.staging_synced(queued.key, cloud_run_id=result.cloud_run_id) as staged:
        try:
            _mirror(workspace, manifest, staged.record)
        except OrchestratorError:
            # The manifest may have been written before the error (its audit line
            # failed): if it says synced, the ledger must too.
            if _manifest_sync(workspace, manifest) == staged.record:
                staged.commit()
            raise
        return staged.commit()


def _manifest_sync(workspace: Workspace, manifest: RunManifest) -> SyncRecord | None:
    try:
        return workspace.store.read(manifest.task_id, manifest.run_id).sync
    except OrchestratorError:
        return None


def _mirror(workspace: Workspace, manifest: RunManifest, record: SyncRecord) -> None:
    """Copy the ledger's record into the manifest, unless it is there already."""
    if manifest.sync == record:
        return

    def set_sync(target: RunManifest) -> None:
        target.sync = record

    workspace.store.update(
        record.task_id,
        record.run_id,
        set_sync,
        event="sync.updated",
        state=record.state.value,
        attempts=record.attempts,
        cloud_run_id=record.cloud_run_id,
        error=record.last_error,
    )


def _backlog(workspace: Workspace, ledger: SyncLedger, errors: list[str]) -> list[tuple[str, str]]:
    """(task id, run id) of every run to retry; what cannot be read goes to ``errors``."""
    queued: dict[str, tuple[str, str]] = {}
    known: set[str] = set()
    for key in ledger.keys():
        known.add(key)
        try:
            record = ledger.get(key)
        except ManifestCorruptError as exc:
            errors.append(str(exc))
            continue
        if record is not None and record.state in RETRY_STATES:
            queued[key] = (record.task_id, record.run_id)
    for ref in workspace.store.list_runs():
        key = idempotency_key(ref.task_id, ref.run_id)
        if key in known:
            continue
        try:
            manifest = workspace.store.read(ref.task_id, ref.run_id)
        except ManifestCorruptError as exc:
            errors.append(str(exc))
            continue
        if manifest.status.finished:
            queued[key] = (ref.task_id, ref.run_id)
    return sorted(queued.values())
