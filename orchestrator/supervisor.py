"""Processes we start: spawn with a clean environment, wait until ready, stop by PID.

One lifecycle for every server the project starts (the dev stack's Vault, Runs API,
replay model, Prefect server and worker) and the stopping part of any other process
we own (the codex transport)::

    process = spawn("runs-api", command, log=path, env=clean_environ({"TOKEN": token}))
    url = process.wait_ready(ready_line(r"listening on (http://\\S+)"), timeout=30)
    ...
    process.stop()          # its tree and session: SIGTERM, bounded wait, SIGKILL

A process is its PID *and* its start time (:class:`ProcessRef`): a PID is signalled
only while it still belongs to the process we started, so a recycled PID is never hit,
and nothing is ever looked up or stopped by name.

Two ways to start one:

- owned (the default): a child in a session of its own (a Ctrl-C meant for us does not
  reach it; we decide when it stops) with a parent-death signal (``setpriv
  --pdeathsig``), so it goes when we go, even by SIGKILL. The signal is tied to the
  *thread* that spawned it: spawn from a thread that lives as long as the process
  should. Its output goes to the log file, through a line filter when one is given.
- detached (``detached=True``): meant to outlive us (``make serve``), started with
  ``posix_spawn`` (not a ``Popen`` object, which warns when dropped while its child
  runs), output straight to the log; stop it later from its recorded :class:`ProcessRef`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

from .exceptions import ProcessError
from .processes import descendants, is_same_process, process_table, start_ticks

PASSED_ENV = (
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LOGNAME",
    "PATH",
    "PYTHONPATH",
    "SHELL",
    "TERM",
    "TMPDIR",
    "TZ",
    "USER",
)
"""The only variables of ours a child inherits unless given explicitly: none is secret."""

POLL_SECONDS = 0.05
_IN_FOLDER = 'cd "$0" && exec "$@"'
"""Runs a command in a folder (``posix_spawn`` has no ``cwd``); ``exec`` keeps the PID."""

LineFilter = Callable[[bytes], bytes | None]
"""Rewrites one output line on its way to the log; ``None`` drops it."""


@dataclass(frozen=True)
class ProcessRef:
    """A process as its PID and its start time (clock ticks since boot)."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        """The process running as ``pid`` now."""
        return cls(pid, start_ticks(pid))

    @property
    def running(self) -> bool:
        """Still alive as the same process (a zombie is not)."""
        return is_same_process(self.pid, self.start_ticks)


class Stoppable(ABC):
    """Something we start and must stop: ``with`` starts it (:meth:`_enter`) and stops it."""

    @abstractmethod
    def stop(self) -> object:
        """Stop it (idempotent); what that returns is the subclass's."""

    def _enter(self) -> None:  # noqa: B027 - a hook with a default, not abstract
        """What entering ``with`` does first (default: nothing; it is already started)."""

    def __enter__(self) -> Self:
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ReadyCheck(Protocol):
    """Returns what the caller waits for (e.g. the server's URL) once ready, else ``None``."""

    def __call__(self, process: Supervised, /) -> str | None: ...


def clean_environ(
    extra: Mapping[str, str] | None = None,
    *,
    passed: Sequence[str] = PASSED_ENV,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """A child's environment: ``passed`` variables of ours, then ``extra`` over them.

    ``PATH`` is led by this interpreter's folder, so the tools installed beside it
    (``prefect``, ``codex``) are the ones found.
    """
    env = {name: environ[name] for name in passed if name in environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra or {})
    return env


def dies_with_parent(command: Sequence[str], death_signal: signal.Signals) -> list[str]:
    """``command`` run so that it gets ``death_signal`` when its parent thread ends.

    ``setpriv`` (util-linux) sets the signal and then execs the command, keeping its
    PID. Without ``setpriv`` the command runs as it is.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return list(command)
    return [setpriv, "--pdeathsig", death_signal.name.removeprefix("SIG"), "--", *command]


class Supervised(Stoppable):
    """One process we started: its PID and start time, its log; stop it with :meth:`stop`."""

    def __init__(
        self,
        name: str,
        ref: ProcessRef,
        *,
        log: Path,
        log_offset: int,
        popen: subprocess.Popen[bytes] | None = None,
        pump: threading.Thread | None = None,
    ) -> None:
        self.name = name
        self.ref = ref
        self.log = log
        self.log_offset = log_offset
        """The log's size before the start: a ready check reads only what follows."""
        self._popen = popen
        self._pump = pump
        self._exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.ref.pid

    @property
    def running(self) -> bool:
        return self.poll() is None

    def poll(self) -> int | None:
        """Its exit code once it has exited (reaping it when it is our child), else ``None``."""
        if self._exit_code is None:
            self._exit_code = self._reap()
        return self._exit_code

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until it exits (at most ``timeout`` seconds); its exit code, or ``None``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if self._popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(None if deadline is None else deadline - time.monotonic())
            else:
                time.sleep(POLL_SECONDS)
        return code

    def wait_ready(self, check: ReadyCheck, *, timeout: float) -> str:
        """Poll ``check`` until it answers; its answer. A process that fails is stopped.

        Raises:
            ProcessError: it exited, or was not ready within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            answer = check(self)
            if answer is not None:
                return answer
            code = self.poll()
            if code is not None:
                raise self._failed(f"exited with code {code}", exit_code=code)
            if time.monotonic() >= deadline:
                self.stop()
                raise self._failed(f"was not ready within {timeout:.0f} s")
            time.sleep(POLL_SECONDS)

    def stop(self, *, timeout: float = 5.0) -> int | None:
        """Stop it and everything it started (SIGTERM, ``timeout``, SIGKILL); its exit code.

        Raises:
            ProcessError: a process survived SIGKILL.
        """
        if self.ref.running:
            terminate(snapshot([self.pid]), leaders=[self.pid], timeout=timeout)
        code = self.wait(timeout)
        if self._pump is not None:
            self._pump.join(timeout)
        return code

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines it wrote (not what an earlier process left in its log)."""
        return log_tail(self.log, lines, offset=self.log_offset)

    def _reap(self) -> int | None:
        if self._popen is not None:
            return self._popen.poll()
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # not our child (or reaped): all we can tell is alive or not
            return None if self.ref.running else -1
        return os.waitstatus_to_exitcode(status) if pid else None

    def _failed(self, what: str, *, exit_code: int | None = None) -> ProcessError:
        message = f"{self.name} {what}; its log {self.log} ends:\n{self.log_tail()}"
        return ProcessError(message, name=self.name, exit_code=exit_code)


def spawn(
    name: str,
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
    detached: bool = False,
    line_filter: LineFilter | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
) -> Supervised:
    """Start ``command`` in a session of its own with exactly ``env``; output to ``log``.

    Args:
        name: What to call it in messages.
        command: The program and its arguments (never a secret: command lines are
            world-readable in ``/proc``; pass secrets in ``env``).
        log: Where its output is appended (created with its folder).
        env: Its whole environment (see :func:`clean_environ`).
        cwd: Its working folder (default: ours).
        detached: Meant to outlive us: no parent-death signal, no line filter.
        line_filter: Owned processes only: each output line passes through it.
        death_signal: What an owned process gets when the spawning thread ends.

    Raises:
        OSError: the program could not be started.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    if detached:
        if line_filter is not None:
            raise ValueError("a detached process writes its log itself: no line filter")
        pid = _spawn_detached(command, log=log, env=env, cwd=cwd or Path.cwd())
        return Supervised(name, ProcessRef.of(pid), log=log, log_offset=offset)
    popen, pump = _spawn_owned(
        dies_with_parent(command, death_signal), log=log, env=env, cwd=cwd, line_filter=line_filter
    )
    return Supervised(
        name, ProcessRef.of(popen.pid), log=log, log_offset=offset, popen=popen, pump=pump
    )


def _spawn_detached(command: Sequence[str], *, log: Path, env: Mapping[str, str], cwd: Path) -> int:
    argv = ["/bin/sh", "-c", _IN_FOLDER, str(cwd), *command]
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return os.posix_spawn(
            argv[0],
            argv,
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, out, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(out)


def _spawn_owned(
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    cwd: Path | None,
    line_filter: LineFilter | None,
) -> tuple[subprocess.Popen[bytes], threading.Thread | None]:
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out if line_filter is None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if line_filter is None:
        return popen, None
    assert popen.stdout is not None
    pump = threading.Thread(
        target=_copy_filtered,
        args=(popen.stdout, log, line_filter),
        name=f"log-{popen.pid}",
        daemon=True,
    )
    pump.start()
    return popen, pump


def _copy_filtered(stream: IO[bytes], log: Path, line_filter: LineFilter) -> None:
    with stream, open(log, "ab") as out:
        for line in stream:
            kept = line_filter(line)
            if kept is not None:
                out.write(kept)
                out.flush()


# --- ready checks ---------------------------------------------------------------------------


def ready_line(pattern: str | re.Pattern[str]) -> ReadyCheck:
    """Ready once a line of the log written since the start matches; group 1 (or the match)."""
    regex = re.compile(pattern)

    def check(process: Supervised) -> str | None:
        try:
            with open(process.log, encoding="utf-8", errors="replace") as file:
                file.seek(process.log_offset)
                match = regex.search(file.read())
        except FileNotFoundError:
            return None
        if match is None:
            return None
        return match.group(1) if regex.groups else match.group(0)

    return check


def health_url(url: str, *, answer: str | None = None, timeout: float = 2.0) -> ReadyCheck:
    """Ready once ``GET url`` answers 200; ``answer`` (default: ``url``)."""
    import httpx  # only those who wait on a URL pay for it

    def check(process: Supervised) -> str | None:
        try:
            response = httpx.get(url, timeout=timeout)
        except httpx.HTTPError:
            return None
        return (answer or url) if response.status_code == 200 else None

    return check


# --- stopping by PID and start time -------------------------------------------------------


def snapshot(pids: Iterable[int]) -> dict[int, int]:
    """``pids``, their descendants and the members of their sessions: pid -> start ticks.

    Take it before the first signal: a killed process's children are re-parented and
    can no longer be found from it. This process is never part of it.
    """
    table = process_table()
    roots = set(pids)
    found = {pid for pid in roots if pid in table}
    found |= {info.pid for info in table.values() if info.session in roots}
    for pid in list(found):
        found |= set(descendants(pid, table))
    found.discard(os.getpid())
    return {pid: table[pid].start_ticks for pid in found}


def signal_processes(processes: Mapping[int, int], signum: int) -> None:
    """Send ``signum`` to each process (pid -> start ticks) that is still the same process."""
    for pid, ticks in processes.items():
        if is_same_process(pid, ticks):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)


def still_running(processes: Mapping[int, int]) -> list[int]:
    """Those of ``processes`` (pid -> start ticks) that still run (a zombie does not)."""
    return sorted(pid for pid, ticks in processes.items() if is_same_process(pid, ticks))


def wait_gone(processes: Mapping[int, int], *, timeout: float) -> dict[int, int]:
    """Wait until every process is gone, at most ``timeout`` seconds; the ones left."""
    deadline = time.monotonic() + timeout
    while (left := {p: t for p, t in processes.items() if is_same_process(p, t)}) and (
        time.monotonic() < deadline
    ):
        time.sleep(POLL_SECONDS)
    return left


def terminate(
    processes: Mapping[int, int],
    *,
    leaders: Iterable[int] = (),
    timeout: float = 5.0,
    kill_timeout: float = 5.0,
) -> None:
    """SIGTERM each process (pid -> start ticks), wait ``timeout``, then SIGKILL the rest.

    What ``leaders`` started meanwhile is caught by a second snapshot before the SIGKILL.

    Raises:
        ProcessError: a process was still alive ``kill_timeout`` seconds after SIGKILL.
    """
    signal_processes(processes, signal.SIGTERM)
    left = wait_gone(processes, timeout=timeout)
    left |= snapshot([pid for pid in leaders if pid in left])
    if not left:
        return
    signal_processes(left, signal.SIGKILL)
    if survivors := wait_gone(left, timeout=kill_timeout):
        raise ProcessError(
            f"processes {sorted(survivors)} survived SIGKILL for {kill_timeout:.0f} s",
            name="stop",
        )


def reap(pids: Iterable[int]) -> None:
    """Collect the exit status of those of ``pids`` that are our exited children."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def log_tail(path: Path, lines: int = 15, *, offset: int = 0) -> str:
    """The last ``lines`` lines of a log file after byte ``offset`` (for error messages)."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"
