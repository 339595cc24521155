"""The stack's fork server, which the main worker's flow runs are forked from
(:mod:`flows.forkserver`)."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from flows.forkrun import SOCKET_ENV
from flows.forkserver import READY
from orchestrator.supervisor import ready_line

from ._parts import Starting, spawn_part
from ._records import state_folder

FORKSERVER_SOCKET = "forkserver/socket"
"""Under the state folder; its folder is 0700, the socket 0600."""
FORKSERVER_TIMEOUT = 60.0
"""Its imports take ~2.2 CPU-s; on a busy machine, more."""


def forkserver_socket(state_dir: Path) -> Path:
    """Where the stack's fork server listens."""
    return state_folder(state_dir) / FORKSERVER_SOCKET


def forkserver_environ(state_dir: Path) -> dict[str, str]:
    """What a worker needs so that its flow runs (``python -m flows.forkrun``) are forked."""
    return {SOCKET_ENV: str(forkserver_socket(state_dir))}


def spawn_forkserver(state_dir: Path, *, env: Mapping[str, str], project_dir: Path) -> Starting:
    """``python -m flows.forkserver``: Prefect and the flows imported once, a child per run.

    ``env`` is the worker's environment without its secrets: the server imports Prefect
    with it (each child takes its client's environment instead). Ready once it listens.
    """
    command = [sys.executable, "-m", "flows.forkserver"]
    command += ["--socket", str(forkserver_socket(state_dir))]
    return spawn_part(
        "forkserver",
        command,
        state_dir=state_dir,
        env=env,
        ready=ready_line(re.escape(READY) + r"(\S+)"),
        timeout=FORKSERVER_TIMEOUT,
        cwd=project_dir,
    )
