"""Where disk errors enter our code: an ``OSError`` becomes one :class:`StorageError`."""

from __future__ import annotations

import contextlib
import errno
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
