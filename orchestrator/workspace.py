"""The context object passed down instead of globals: settings, redactor, audit log, run store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .audit import AuditLog
from .exceptions import InvalidInputError
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
        """The workspace under ``settings.home``; opening writes nothing.

        Raises:
            InvalidInputError: ``.runs``, ``out`` or ``work`` is a symbolic link (run data
                would land wherever it points, outside the home's permissions and locks).
        """
        settings = settings or Settings()
        for folder in (settings.runs_dir, settings.out_dir, settings.work_dir):
            _refuse_symlink(folder)
        redactor = redactor or get_redactor()
        audit = AuditLog(settings.out_dir, redactor=redactor)
        store = RunStore(
            settings.runs_dir, audit=audit, redactor=redactor, lock_timeout=settings.lock_timeout
        )
        return cls(settings=settings, redactor=redactor, audit=audit, store=store)


def _refuse_symlink(folder: Path) -> None:
    if folder.is_symlink():
        raise InvalidInputError(
            f"{folder} is a symbolic link (to {folder.readlink()}); the orchestrator home's "
            "folders must be real folders: replace the link with a folder, or point "
            "ORCHESTRATOR_HOME elsewhere"
        )
