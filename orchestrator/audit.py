"""The audit log: append-only JSON lines in ``out/audit.log``, safe for many writers."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from schemas import AuditEvent, schema_errors, utc_now

from ._disk import disk_errors, storage_error
from .exceptions import ManifestCorruptError
from .redaction import Redactor, get_redactor

AUDIT_FILE_NAME = "audit.log"


class AuditLog:
    """Appends one redacted, schema-valid JSON line per event.

    Writers in many processes take a file lock around a single ``write`` on a file
    opened in append mode, so lines never interleave.
    """

    def __init__(self, out_dir: Path, *, redactor: Redactor | None = None) -> None:
        self.path = Path(out_dir) / AUDIT_FILE_NAME
        self._lock = FileLock(str(self.path) + ".lock")
        self._redactor = redactor

    def append(
        self,
        event: str,
        *,
        task_id: str | None = None,
        run_id: str | None = None,
        actor: str | None = None,
        **detail: Any,
    ) -> AuditEvent:
        """Write one line; returns the event as written (redacted)."""
        redactor = self._redactor or get_redactor()
        record = AuditEvent(
            ts=utc_now(),
            event=event,
            task_id=task_id,
            run_id=run_id,
            actor=actor,
            pid=os.getpid(),
            detail=redactor.redact_data(detail),
        )
        line = redactor.redact(record.model_dump_json()) + "\n"
        with disk_errors("the audit log", self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        return record

    def check_writable(self) -> None:
        """Make sure a line can be appended, without writing one (a run must not start blind).

        Raises:
            StorageError: the log is not a writable file, or it cannot be created.
        """
        for path in (self.path, Path(self._lock.lock_file)):
            if path.exists():
                problem = None if path.is_file() else errno.EISDIR
                problem = problem or (None if os.access(path, os.W_OK) else errno.EACCES)
            else:
                problem = None if _can_create(path) else errno.EACCES
            if problem is not None:
                error = OSError(problem, os.strerror(problem), str(path))
                raise storage_error("the audit log", self.path, error)

    def read(self) -> Iterator[AuditEvent]:
        """Every line, validated; a malformed line raises :class:`ManifestCorruptError`."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                yield _parse_line(line, where=f"{self.path}:{number}")


def _parse_line(line: str, *, where: str) -> AuditEvent:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestCorruptError(f"not JSON ({exc.msg})", path=where) from exc
    error = schema_errors("audit-event", data)
    if error:
        raise ManifestCorruptError(f"not a valid audit event: {error}", path=where)
    return AuditEvent.model_validate(data)


def _can_create(path: Path) -> bool:
    """True when ``path`` can be created: its nearest existing folder is writable."""
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
