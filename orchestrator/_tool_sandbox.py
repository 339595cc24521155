"""The sandbox around the learning library's tools: bubblewrap, the worktree writable only.

A codemod or linter reads the whole file system (its interpreter, its script, the
repository) but writes only the worktree it works on, has no network (its own network
namespace, with nothing but a loopback of its own) and sees no process of ours. It is
the same bubblewrap codex's sandbox uses (Debian's ``bubblewrap``, which ``make setup``
installs).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .exceptions import LibraryError


def sandboxed(argv: list[str], writable: Path) -> list[str]:
    """``argv`` run by bubblewrap with only ``writable`` writable.

    Raises:
        LibraryError: bubblewrap is not installed.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise LibraryError(
            "bubblewrap (bwrap) is not installed: library tools run in its sandbox "
            "(apt-get install bubblewrap; make setup does)"
        )
    folder = str(writable.resolve())
    return [
        bwrap,
        "--ro-bind", "/", "/",
        "--bind", folder, folder,
        "--dev", "/dev",
        "--proc", "/proc",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--chdir", folder,
        "--",
        *argv,
    ]  # fmt: skip
