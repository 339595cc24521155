"""Folders that a PostgreSQL cluster's own user can reach (pytest's are 0700 root)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def reachable_folder(prefix: str) -> Iterator[Path]:
    """A new folder under the system's temporary folder that other users may pass through
    (mode 0711: not list), removed afterwards. Run as root, the stack's PostgreSQL runs as
    the ``postgres`` user, which must pass through every folder above its cluster."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(folder, 0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
