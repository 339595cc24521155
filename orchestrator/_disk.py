"""Where disk errors enter our code: an ``OSError`` becomes one :class:`StorageError`."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from .exceptions import OrchestratorError, StorageError

_PLAIN_WORDS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted (an immutable file?)",
    errno.EISDIR: "a folder stands where a file belongs",
    errno.ENOTDIR: "a file stands where a folder belongs",
}


LOW_SPACE_BYTES = 1024 * 1024
"""Below this much free space, a program's failed write is taken for a full disk: git, for
one, says "Could not reset index file" rather than ENOSPC."""
_ENOSPC_TEXT = os.strerror(errno.ENOSPC)


@contextlib.contextmanager
def disk_errors(what: str, path: Path) -> Iterator[None]:
    """Translate an ``OSError`` inside the block into :class:`StorageError` naming ``what``.

    Raises:
        StorageError: the block raised an ``OSError`` (not one of our own errors).
    """
    try:
        yield
    except OrchestratorError:
        raise
    except OSError as exc:
        raise storage_error(what, path, exc) from None


def storage_error(what: str, path: Path, exc: OSError) -> StorageError:
    """One clear error for an ``OSError`` met while writing ``what`` at ``path``."""
    code = exc.errno if exc.errno is not None else 0
    reason = _PLAIN_WORDS.get(code) or exc.strerror or type(exc).__name__
    where = exc.filename or path
    return StorageError(
        f"cannot write {what} at {where}: {reason}",
        path=str(where),
        errno_name=errno.errorcode.get(code),
    )


def free_bytes(path: Path) -> int:
    """Bytes free to us on the file system holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        with contextlib.suppress(OSError):
            stats = os.statvfs(candidate)
            return stats.f_bavail * stats.f_frsize
    return 0


def full_disk_error(what: str, path: Path, detail: str) -> StorageError | None:
    """A :class:`StorageError` when a program's failure writing ``what`` at ``path`` was a
    full disk (its message says so, or less than :data:`LOW_SPACE_BYTES` is left); else None.
    """
    free = free_bytes(path)
    if _ENOSPC_TEXT not in detail and free >= LOW_SPACE_BYTES:
        return None
    return StorageError(
        f"cannot write {what} at {path}: the disk is full ({free // 1024} KiB free; {detail})",
        path=str(path),
        errno_name="ENOSPC",
    )


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first (to
    remove again when what was to go in them could not be written)."""
    missing = [f for f in (folder, *folder.parents) if not f.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing
