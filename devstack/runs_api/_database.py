"""The reference Runs API's SQLite store: one row per idempotency key, answers replayed.

The first import of a key is stored with the sha256 of its canonical JSON body and the
answer it got. The same key with the same body gets that same answer again; the same
key with another body gets 409. A unique index on (workspace, key) keeps one row per key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas import utc_now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    task_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    manifest TEXT NOT NULL,
    bucket TEXT,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_workspace_key ON runs (workspace, idempotency_key);
CREATE INDEX IF NOT EXISTS runs_workspace_created ON runs (workspace, created_at, id);
"""


class ImportSummary(BaseModel):
    """The summary part of an import body; other fields are kept as sent.

    Both clients' summaries pass: ours (with ``status`` and much more) and the seed's
    ``RunSummary`` (``taskId``, ``runId``, ``mode``, ``plan``, ``build``, ``test``,
    ``review``, ``timestamp``; no ``status``).
    """

    model_config = ConfigDict(extra="allow")

    task_id: str = Field(alias="taskId", min_length=1, max_length=200)
    run_id: str = Field(alias="runId", min_length=1, max_length=200)
    mode: str = Field(min_length=1, max_length=50)
    status: str | None = Field(default=None, min_length=1, max_length=50)


class ImportRequest(BaseModel):
    """The body of ``POST .../runs/import``."""

    model_config = ConfigDict(extra="forbid")

    summary: ImportSummary
    manifest: dict[str, Any]
    bucket: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey", max_length=200)


@dataclass(frozen=True)
class ImportOutcome:
    status_code: int
    response: dict[str, Any]
    replayed: bool = False


class RunsDatabase:
    """The SQLite store of imported runs; one connection, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def import_run(
        self, workspace: str, key: str, request: ImportRequest, body: dict[str, Any]
    ) -> ImportOutcome:
        """Store the run once per key; the same key answers the same, or 409 on another body."""
        body_sha256 = _canonical_sha256(body)
        with self._lock:
            row = self._conn.execute(
                "SELECT body_sha256, response FROM runs"
                " WHERE workspace = ? AND idempotency_key = ?",
                (workspace, key),
            ).fetchone()
            if row is not None:
                return _replay(stored_sha256=row[0], response=row[1], body_sha256=body_sha256)
            return self._insert(workspace, key, request, body_sha256)

    def _insert(
        self, workspace: str, key: str, request: ImportRequest, body_sha256: str
    ) -> ImportOutcome:
        run_id = f"run_{secrets.token_hex(10)}"
        response = {"id": run_id, "idempotencyKey": key, "createdAt": utc_now().isoformat()}
        summary = request.summary
        with self._conn:
            self._conn.execute(
                "INSERT INTO runs (id, workspace, idempotency_key, body_sha256, task_id, run_id,"
                " summary, manifest, bucket, response, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    workspace,
                    key,
                    body_sha256,
                    summary.task_id,
                    summary.run_id,
                    summary.model_dump_json(by_alias=True, exclude_unset=True),
                    json.dumps(request.manifest),
                    request.bucket,
                    json.dumps(response),
                    response["createdAt"],
                ),
            )
        return ImportOutcome(200, response)

    def list_runs(
        self, workspace: str, *, limit: int, offset: int, task_id: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of runs (oldest first) and the total count."""
        where, params = "workspace = ?", [workspace]
        if task_id is not None:
            where, params = where + " AND task_id = ?", [*params, task_id]
        with self._lock:
            total = self._conn.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params)
            count = int(total.fetchone()[0])
            rows = self._conn.execute(
                "SELECT id, idempotency_key, summary, bucket, created_at FROM runs"
                f" WHERE {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_item(row) for row in rows], count

    def get_run(self, workspace: str, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, idempotency_key, summary, bucket, created_at, manifest FROM runs"
                " WHERE workspace = ? AND id = ?",
                (workspace, run_id),
            ).fetchone()
        if row is None:
            return None
        return {**_item(row[:5]), "manifest": json.loads(row[5])}


def _canonical_sha256(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(*, stored_sha256: str, response: str, body_sha256: str) -> ImportOutcome:
    if stored_sha256 != body_sha256:
        message = "this idempotency key was already used with a different body"
        return ImportOutcome(409, {"message": message})
    return ImportOutcome(200, json.loads(response), replayed=True)


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, key, summary, bucket, created_at = row
    return {
        "id": run_id,
        "idempotencyKey": key,
        "summary": json.loads(summary),
        "bucket": bucket,
        "createdAt": created_at,
    }
