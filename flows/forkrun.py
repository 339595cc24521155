"""The flow-run command of a worker whose machine runs a fork server (:mod:`flows.forkserver`).

``python -m flows.forkrun [ARGS]`` stands where a work pool's ``command`` job variable
said ``python -m prefect.engine [ARGS]``. With ``ORCHESTRATOR_FORKSERVER`` naming the fork
server's socket, it hands the server its environment, working folder, umask, arguments
and standard streams; the server forks a child that has already imported Prefect and the
flows and runs ``prefect.engine`` there. This process stays as the child's stand-in for
the worker: a signal it gets goes to the child's process group, and it ends as the child
ended (the same exit code, or killed by the same signal). If it dies (SIGKILL), the
server kills the child. Without the variable, or when the server cannot be reached, it
becomes ``python -m prefect.engine`` itself (``exec``, one line on stderr saying why in
the second case), so a deployment with this command runs on any worker.

Only the standard library is imported here: this process is started once per flow run,
and what it imports is what the fork server saves.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from typing import NoReturn

SOCKET_ENV = "ORCHESTRATOR_FORKSERVER"
ENGINE = "prefect.engine"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)
HEADER = struct.Struct("!I")
"""A request: this header (the JSON's length) with the three descriptors, then the JSON."""
STATUS = struct.Struct("!ii")
"""The server's answers: ``(FORKED, child pid)``, then ``(ENDED, wait status)``; or
``(REFUSED, 0)`` when it cannot run this request (its log says why)."""
FORKED, ENDED, REFUSED = 0, 1, 2


def main(argv: list[str]) -> None:
    """Run the flow run through the fork server, or become ``prefect.engine``."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        _become_engine(argv)
    try:
        connection = _connect(path)
    except OSError as exc:
        _say(f"fork server {path} unreachable ({exc.strerror})")
        _become_engine(argv)
    status = _run_child(connection, argv)
    if status is None:
        _say(f"fork server {path} refused the flow run (its log says why)")
        _become_engine(argv)
    _end_as(status)


def request_of(argv: list[str]) -> bytes:
    """What the fork server needs to start ``prefect.engine ARGV`` as this process would."""
    umask = os.umask(0o022)
    os.umask(umask)
    body = {
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": umask,
        "prefix": sys.prefix,  # the environment the code comes from: the server's, or refused
    }
    return json.dumps(body).encode()


def _connect(path: str) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:
        connection.close()
        raise
    return connection


def _run_child(connection: socket.socket, argv: list[str]) -> int | None:
    """Send the request, forward signals to the child, return its wait status (``None``:
    refused)."""
    body = request_of(argv)
    socket.send_fds(connection, [HEADER.pack(len(body))], [0, 1, 2])
    connection.sendall(body)
    for signum in FORWARDED:  # before the child exists: its pid comes back first
        signal.signal(signum, lambda signum, _frame: _forward(connection, signum))
    while True:
        kind, value = _answer(connection)
        if kind == ENDED:
            return value
        if kind == REFUSED:
            return None


def _forward(connection: socket.socket, signum: int) -> None:
    try:
        connection.sendall(bytes([signum]))
    except OSError:
        pass  # the server is gone; so is the child (it dies with the server)


def _answer(connection: socket.socket) -> tuple[int, int]:
    data = recv_exactly(connection, STATUS.size)
    if data is None:
        print(
            "forkrun: the fork server went away before the flow run ended",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1)
    kind, value = STATUS.unpack(data)
    return kind, value


def recv_exactly(connection: socket.socket, size: int) -> bytes | None:
    """``size`` bytes from ``connection``; ``None`` if it ends before."""
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _end_as(status: int) -> NoReturn:
    """Exit as the child did: its code, or its signal (default action restored first)."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    raise SystemExit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _say(problem: str) -> None:
    print(
        f"forkrun: {problem}; running prefect.engine in this process", file=sys.stderr, flush=True
    )


def _become_engine(argv: list[str]) -> NoReturn:
    os.execv(sys.executable, [sys.executable, "-m", ENGINE, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
