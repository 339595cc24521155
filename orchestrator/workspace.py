"""The context object passed down instead of globals: settings, redactor, audit log, run store."""

from __future__ import annotations

from dataclasses import dataclass

from .audit import AuditLog
from .redaction import Redactor, get_redactor
from .runstore import RunStore
from .settings import Settings


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    redactor: Redactor
    audit: AuditLog
    store: RunStore

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, redactor: Redactor | None = None
    ) -> Workspace:
        """The workspace under ``settings.home``; opening writes nothing."""
        settings = settings or Settings()
        redactor = redactor or get_redactor()
        audit = AuditLog(settings.out_dir, redactor=redactor)
        store = RunStore(
            settings.runs_dir, audit=audit, redactor=redactor, lock_timeout=settings.lock_timeout
        )
        return cls(settings=settings, redactor=redactor, audit=audit, store=store)
