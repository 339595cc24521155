"""CPU-seconds and PSS of a process tree, by process kind, sampled from ``/proc``.

A sampler thread reads ``/proc/<pid>/stat`` of every process of the stack a few times a
second. A process's own CPU is its last sampled ``utime + stime`` (minus what it had
when the window opened); a process that lived too briefly to be sampled (git, a test
command, a short flow-run helper) is still counted: when its parent reaps it, the
kernel adds its CPU to the parent's ``cutime + cstime``, and whatever part of that
growth no sampled child explains goes to the kind of child that parent has (codex's
children are the agents' commands, a flow-run process's are its git commands, ...).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

FLOW_RUN = "flow-run python"
SERVER = "prefect server"
WORKER = "prefect worker"
CODEX = "codex"
AGENT_COMMANDS = "agents' commands"
RUN_COMMANDS = "run's own commands (git)"
SERVICES = "dev services (vault, runs api, replay)"
FORKSERVER = "fork server (its own, idle)"
DATABASE = "database"
OTHER = "other"
KINDS = (
    FLOW_RUN,
    SERVER,
    WORKER,
    CODEX,
    AGENT_COMMANDS,
    RUN_COMMANDS,
    DATABASE,
    SERVICES,
    FORKSERVER,
    OTHER,
)

CHILD_KIND = {
    WORKER: FLOW_RUN,
    FORKSERVER: FLOW_RUN,
    FLOW_RUN: RUN_COMMANDS,
    CODEX: AGENT_COMMANDS,
    AGENT_COMMANDS: AGENT_COMMANDS,
    RUN_COMMANDS: RUN_COMMANDS,
}
"""What an unsampled child of a process of this kind most likely was."""


@dataclass
class Proc:
    pid: int
    ppid: int
    start: int
    kind: str
    first_own: int
    first_children: int
    own: int
    children: int
    born_in_window: bool
    command: str = ""
    comm: str = ""


def _stat(pid: int) -> tuple[str, int, int, int, int] | None:
    """comm, ppid, own ticks, reaped children's ticks, start ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14])
    return comm, ppid, own, children, int(fields[19])


def _comm(pid: int) -> str:
    stat = _stat(pid)
    return stat[0] if stat else ""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


FLOW_RUN_MARKS = (
    "prefect.engine",
    "_workspace_supervisor",
    "_workspace_runtime",
    "flows.forkrun",  # the worker's child, standing in for a forked flow run
)
FORKED_COMM = "prefect-flowrun"
"""The name (``comm``) of a fork server's child, which keeps the server's command line."""


def classify(comm: str, cmdline: str, parent_kind: str | None) -> str:
    """The kind of a process, from its command line and its parent's kind."""
    if parent_kind in (CODEX, AGENT_COMMANDS):
        return AGENT_COMMANDS
    if any(m in cmdline for m in FLOW_RUN_MARKS) or comm == FORKED_COMM:
        return FLOW_RUN
    if "flows.forkserver" in cmdline:
        return FLOW_RUN if parent_kind == FORKSERVER else FORKSERVER
    if "worker start" in cmdline:
        return WORKER
    if "prefect" in cmdline and ("server" in cmdline or "uvicorn" in cmdline):
        return SERVER
    if comm.startswith("codex") or "/codex" in cmdline.split(" ")[0]:
        return CODEX
    if comm.startswith("postgres") or comm.startswith("postmaster"):
        return DATABASE
    if any(name in cmdline for name in ("devstack.replay", "devstack.runs_api", "bao", "vault")):
        return SERVICES
    if parent_kind in (FLOW_RUN, RUN_COMMANDS):
        return RUN_COMMANDS
    return OTHER


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Sampler:
    """Samples the processes ``members()`` names (pid -> start ticks) until stopped."""

    members: Callable[[], Mapping[int, int]]
    interval: float = 0.2
    pss_every: int = 5
    procs: dict[tuple[int, int], Proc] = field(default_factory=dict)
    peak_pss_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _opened: bool = False

    def start(self) -> None:
        self._sample(first=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sample(first=False)

    def _loop(self) -> None:
        count = 0
        while not self._stop.wait(self.interval):
            count += 1
            self._sample(first=False, pss=count % self.pss_every == 0)

    def _sample(self, *, first: bool, pss: bool = False) -> None:
        live = dict(self.members())
        total_pss = 0
        by_pid = {key[0]: p for key, p in self.procs.items()}
        for pid in sorted(live):  # parents usually have lower pids: classify them first
            stat = _stat(pid)
            if stat is None:
                continue
            comm, ppid, own, children, start = stat
            key = (pid, start)
            proc = self.procs.get(key)
            if proc is not None and proc.comm != comm:  # it exec'd since (fork, then exec)
                parent = by_pid.get(ppid)
                proc.command = _cmdline(pid)[:160]
                proc.kind = classify(comm, proc.command, parent.kind if parent else None)
                proc.comm = comm
            if proc is None:
                parent = by_pid.get(ppid)
                command = _cmdline(pid)
                kind = classify(comm, command, parent.kind if parent else None)
                base_own, base_children = (own, children) if first else (0, 0)
                proc = Proc(
                    pid, ppid, start, kind, base_own, base_children, own, children, not first
                )
                proc.command, proc.comm = command[:160], comm
                self.procs[key] = proc
                by_pid[pid] = proc
            proc.own, proc.children = own, children
            if pss:
                total_pss += pss_kb(pid)
        self.peak_pss_kb = max(self.peak_pss_kb, total_pss)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU-seconds spent in the window, by kind (see the module docstring)."""
        ticks = dict.fromkeys(KINDS, 0)
        sampled_children: dict[int, int] = {}
        for proc in self.procs.values():
            ticks[proc.kind] += proc.own - proc.first_own
            if proc.born_in_window and not _running(proc):
                sampled_children[proc.ppid] = sampled_children.get(proc.ppid, 0) + (
                    proc.own + proc.children
                )
        for proc in self.procs.values():
            grown = proc.children - proc.first_children
            unexplained = grown - sampled_children.get(proc.pid, 0)
            if unexplained > 0:
                ticks[CHILD_KIND.get(proc.kind, OTHER)] += unexplained
        return {kind: value / TICK for kind, value in ticks.items()}


def _running(proc: Proc) -> bool:
    stat = _stat(proc.pid)
    return stat is not None and stat[4] == proc.start


def top(sampler: Sampler, count: int = 15) -> list[str]:
    """The processes that spent the most CPU in the window, one line each."""
    procs = sorted(sampler.procs.values(), key=lambda p: p.own - p.first_own, reverse=True)
    return [
        f"{(p.own - p.first_own) / TICK:7.2f} s  {p.kind:<24} {p.pid:>7} <- {p.ppid:<7} {p.command}"
        for p in procs[:count]
    ]


def wait_quiet(members: Callable[[], Mapping[int, int]], *, timeout: float = 120) -> bool:
    """Wait until no flow-run process of an earlier batch is left (bounded); True if none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(FLOW_RUN == classify(_comm(pid), _cmdline(pid), None) for pid in members()):
            return True
        time.sleep(0.5)
    return False
