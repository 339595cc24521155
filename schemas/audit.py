"""One line of ``out/audit.log``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import StrictModel, UtcDatetime


class AuditEvent(StrictModel):
    """An append-only record of one manifest change, approval or sync attempt."""

    ts: UtcDatetime
    event: str = Field(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$",
        description="Dotted name, e.g. 'manifest.updated', 'approval.decided', 'sync.attempt'.",
    )
    task_id: str | None = None
    run_id: str | None = None
    actor: str | None = None
    pid: int
    detail: dict[str, Any] = Field(default_factory=dict)
