"""Mirroring runs to the Codex Cloud Runs API: the record kept per run."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ._base import SafeId, Sha256, StrictModel, UtcDatetime


class SyncState(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


class SyncRecord(StrictModel):
    """The sync state of one run (in the local ledger and mirrored in its manifest)."""

    schema_version: int = 1
    key: Sha256 = Field(description="Idempotency key: sha256 of '<task_id>:<run_id>'.")
    task_id: SafeId
    run_id: SafeId
    state: SyncState = SyncState.PENDING
    attempts: int = Field(default=0, ge=0)
    last_error: str | None = None
    cloud_run_id: str | None = None
    updated_at: UtcDatetime
    synced_at: UtcDatetime | None = None
