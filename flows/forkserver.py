"""A process that has imported Prefect and the flows, and forks one child per flow run.

Every flow run a process worker starts is a new interpreter that imports Prefect, the MCP
SDK and this project before the flow begins (~1.9 CPU-s; docs/architecture.md, "CPU per
run"). ``python -m flows.forkserver --socket PATH`` pays that once: it imports them, then
waits on a Unix socket (mode 0600) for :mod:`flows.forkrun`, the worker's flow-run
command, and answers each request with a forked child that takes over the client's
environment, working folder, umask, arguments and standard streams and runs
``prefect.engine`` as ``python -m prefect.engine`` would (its exit runs Prefect's own
exit handlers). The child runs in a session of its own and dies with the server
(``PR_SET_PDEATHSIG``); the server kills the child's process group when its client dies,
passes on the signals the client forwards, and reports how the child ended.

The server itself holds no threads, event loops or clients, so forking is safe; it only
accepts requests from its own user. SIGTERM or SIGINT stops it: its children get SIGTERM,
then SIGKILL after ``--grace`` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import json
import os
import random
import runpy
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from flows.forkrun import ENDED, ENGINE, FORKED, HEADER, REFUSED, STATUS, recv_exactly

PRELOAD = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.deployments.steps",
    "flows.pipeline",
    "flows.subtask",
    "flows.nightly",
    "fastapi",  # Prefect's parameter serialisation imports it on a subflow's first call
)
"""What every flow run of this project imports before (or soon after) its flow starts."""
READY = "ready on "
"""The server's line once it listens (``forkserver: ready on PATH (pid N)``)."""
GRACE_SECONDS = 10.0
REQUEST_TIMEOUT = 10.0
MAX_REQUEST_BYTES = 16 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
FORKED_NAME = b"prefect-flowrun"
"""A child's process name (``ps -o comm``, ``top``), at most 15 bytes."""
_UCRED = struct.Struct("3i")


class BadRequest(Exception):
    """A client's request that the server cannot run (logged; the client is dropped)."""


@dataclass(frozen=True)
class Request:
    """What a client asked for: ``prefect.engine ARGV`` in its environment and folder."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    umask: int
    prefix: str
    fds: list[int]

    @property
    def flow_run(self) -> str:
        """The flow run's id, as its worker gave it (``?``: none)."""
        return self.env.get("PREFECT__FLOW_RUN_ID", "?")

    @classmethod
    def parse(cls, body: bytes, fds: list[int]) -> Request:
        """Raises: BadRequest: not the JSON object :func:`flows.forkrun.request_of` sends."""
        if len(fds) != 3:
            raise BadRequest(f"expected 3 standard streams, got {len(fds)}")
        try:
            data = json.loads(body)
            request = cls(
                argv=[str(a) for a in data["argv"]],
                cwd=str(data["cwd"]),
                env={str(k): str(v) for k, v in data["env"].items()},
                umask=int(data["umask"]),
                prefix=str(data["prefix"]),
                fds=fds,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadRequest(f"malformed request ({type(exc).__name__})") from None
        return request


@dataclass
class Child:
    """A forked flow run and the connection of the client standing in for it."""

    pid: int
    connection: socket.socket
    flow_run: str


@dataclass
class ForkServer:
    """The accept loop: :meth:`serve` returns only in a forked child, with its request."""

    path: Path
    grace: float = GRACE_SECONDS
    children: dict[int, Child] = field(default_factory=dict)
    _owner: int = field(default_factory=os.getpid)
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def serve(self) -> Request:
        """Accept requests until SIGTERM/SIGINT (then ``SystemExit(0)``); ``SystemExit(2)``
        at once when the socket cannot be bound (another server listens there)."""
        try:
            listener = _bind(self.path)
        except OSError as exc:
            _log(f"cannot listen on {self.path}: {exc.strerror}")
            raise SystemExit(2) from None
        wakeup_read, wakeup_write = socket.socketpair()
        wakeup_write.setblocking(False)
        signal.set_wakeup_fd(wakeup_write.fileno())
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: None)  # wakes the selector through the fd
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(wakeup_read, selectors.EVENT_READ, "signal")
        _log(f"{READY}{self.path} (pid {os.getpid()})")
        try:
            while True:
                for key, _ in self._selector.select():
                    request = self._handle(key)
                    if request is not None:  # in the child
                        for sock in (listener, wakeup_read, wakeup_write):
                            sock.close()
                        self._selector.close()
                        return request
        finally:
            if os.getpid() == self._owner:
                self._stop_children()
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    def _handle(self, key: selectors.SelectorKey) -> Request | None:
        if key.data == "accept":
            return self._accept(key.fileobj)  # type: ignore[arg-type]
        if key.data == "signal":
            self._on_signals(key.fileobj)  # type: ignore[arg-type]
            return None
        self._on_client(key.data)
        return None

    def _accept(self, listener: socket.socket) -> Request | None:
        connection, _ = listener.accept()
        try:
            request = _receive(connection)
        except (BadRequest, OSError) as exc:
            _log(f"refused a request: {exc}")
            connection.close()
            return None
        if request.prefix != sys.prefix:
            _log(f"flow run {request.flow_run}: refused, its client runs from {request.prefix}")
            _close_fds(request.fds)
            with contextlib.suppress(OSError):
                _send(connection, REFUSED, 0)
            connection.close()
            return None
        return self._fork(connection, request)

    def _fork(self, connection: socket.socket, request: Request) -> Request | None:
        """Fork; in the child, return ``request``; in the server, watch the child."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)  # before its socket closes: a SIGCHLD would write there
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            for child in self.children.values():
                child.connection.close()
            connection.close()
            return request
        _close_fds(request.fds)
        child = Child(pid, connection, request.flow_run)
        self.children[pid] = child
        self._selector.register(connection, selectors.EVENT_READ, child)
        _send(connection, FORKED, pid)
        _log(f"flow run {request.flow_run}: pid {pid}")
        return None

    def _on_client(self, child: Child) -> None:
        """A byte per signal the client forwards; end of stream: the client died."""
        try:
            data = child.connection.recv(64)
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(child.connection)
            _signal_group(child.pid, signal.SIGKILL)
            _log(f"flow run {child.flow_run}: its client is gone, pid {child.pid} killed")
            return
        for signum in data:
            _signal_group(child.pid, signum)

    def _on_signals(self, wakeup: socket.socket) -> None:
        signums = wakeup.recv(256)
        self._reap()
        if signal.SIGTERM in signums or signal.SIGINT in signums:
            raise SystemExit(0)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                self._report(child, status)

    def _report(self, child: Child, status: int) -> None:
        with contextlib.suppress(OSError):  # its client may be gone already
            _send(child.connection, ENDED, status)
        with contextlib.suppress(KeyError):  # unregistered when its client went
            self._selector.unregister(child.connection)
        child.connection.close()
        code = os.waitstatus_to_exitcode(status)
        _log(f"flow run {child.flow_run}: pid {child.pid} ended ({_ending(code)})")

    def _stop_children(self) -> None:
        for child in self.children.values():
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for child in self.children.values():
            _signal_group(child.pid, signal.SIGKILL)
        while self.children:
            pid, status = os.waitpid(-1, 0)
            if (ended := self.children.pop(pid, None)) is not None:
                self._report(ended, status)


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _bind(path: Path) -> socket.socket:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_socket() and not _listening(path):
        path.unlink()  # left by a server that died
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _receive(connection: socket.socket) -> Request:
    connection.settimeout(REQUEST_TIMEOUT)
    _, uid, _ = _UCRED.unpack(
        connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    if uid != os.getuid():
        raise BadRequest(f"a client of uid {uid}")
    header, fds, _, _ = socket.recv_fds(connection, HEADER.size, 3)
    try:
        header += _read(connection, HEADER.size - len(header))
        (length,) = HEADER.unpack(header)
        if length > MAX_REQUEST_BYTES:
            raise BadRequest(f"a request of {length} bytes")
        return Request.parse(_read(connection, length), fds)
    except BaseException:
        _close_fds(fds)
        raise


def _read(connection: socket.socket, size: int) -> bytes:
    data = recv_exactly(connection, size)
    if data is None:
        raise BadRequest("the client hung up mid-request")
    return data


def _send(connection: socket.socket, kind: int, value: int) -> None:
    connection.setblocking(True)
    connection.sendall(STATUS.pack(kind, value))


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _ending(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit {code}"


def _log(message: str) -> None:
    print(f"forkserver: {message}", file=sys.stderr, flush=True)


def become_flow_run(request: Request, *, server: int, module: str = ENGINE) -> None:
    """In the forked child: take the client's place and run ``module`` as ``__main__``."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    libc.prctl(_PR_SET_NAME, FORKED_NAME)  # its command line stays the server's
    if os.getppid() != server:  # the server died before the line above
        os._exit(1)
    for target, fd in enumerate(request.fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request.cwd)
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    sys.path[0] = request.cwd  # as for `python -m`, whose first path is the working folder
    random.seed()
    gc.unfreeze()
    _refresh_prefect()
    sys.argv = [sys.argv[0], *request.argv]
    sys.modules.pop(module, None)  # imported by the server: runpy would warn it runs twice
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _refresh_prefect() -> None:
    """Prefect read its settings and set up logging when the server imported it."""
    if "prefect" not in sys.modules:
        return
    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    setup_logging(incremental=False)


def preload(modules: list[str]) -> float:
    """Import ``modules``; the CPU-seconds it took."""
    started = time.process_time()
    for name in modules:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # what every child shares stays out of its collections (fewer copied pages)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.forkserver --socket PATH``."""
    args = _parser().parse_args(argv)
    modules = args.preload if args.preload is not None else list(PRELOAD)
    seconds = preload(modules)
    _log(f"imported {len(modules)} modules in {seconds:.2f} CPU-s")
    server = os.getpid()
    request = ForkServer(args.socket.resolve(), grace=args.grace).serve()
    become_flow_run(request, server=server, module=args.module)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.forkserver",
        description="Import Prefect and the flows once; fork a child per flow run that "
        "'python -m flows.forkrun' asks for (docs/deployments.md, 'Costs of a flow run').",
    )
    parser.add_argument("--socket", type=Path, required=True, help="The Unix socket to listen on.")
    parser.add_argument(
        "--grace",
        type=float,
        default=GRACE_SECONDS,
        help="Seconds children get between SIGTERM and SIGKILL when the server stops.",
    )
    parser.add_argument(
        "--preload",
        action="append",
        metavar="MODULE",
        help="A module to import before forking (repeat; default: Prefect's engine and flows).",
    )
    parser.add_argument(
        "--module", default=ENGINE, help=f"What a child runs as __main__ (default {ENGINE})."
    )
    return parser


if __name__ == "__main__":
    main()
