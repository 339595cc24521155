"""Processes as Linux shows them in ``/proc``: who is alive, whose child, since when.

A PID can be reused; a process is identified by its PID *and* its start time (clock
ticks since boot, field 22 of ``/proc/<pid>/stat``), so that stopping "the process we
started" never hits a stranger that got the same PID.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_GONE_STATES = frozenset({"Z", "X"})  # zombie, dead


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    state: str
    parent: int
    session: int
    start_ticks: int

    @property
    def alive(self) -> bool:
        return self.state not in _GONE_STATES


def process_info(pid: int) -> ProcessInfo | None:
    """What ``/proc/<pid>/stat`` says, or None when there is no such process."""
    stat = _read_stat(pid)
    if stat is None:
        return None
    fields = stat.rpartition(b")")[2].split()  # the command name may hold spaces and ')'
    if len(fields) < 20:
        return None
    state = fields[0].decode("ascii", "replace")
    return ProcessInfo(pid, state, int(fields[1]), int(fields[3]), int(fields[19]))


def _read_stat(pid: int) -> bytes | None:
    # Plain os calls: a scan of the table reads every process's stat, often (at each
    # agent command), and pathlib and a text wrapper made it ~4 times slower.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot; -1 when it does not exist."""
    info = process_info(pid)
    return info.start_ticks if info else -1


def is_same_process(pid: int, ticks: int) -> bool:
    """True while the process that had ``ticks`` as start time still runs as ``pid``."""
    info = process_info(pid)
    return info is not None and info.alive and info.start_ticks == ticks


def process_table() -> dict[int, ProcessInfo]:
    """Every live process."""
    table: dict[int, ProcessInfo] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := process_info(int(entry))) is not None and info.alive:
            table[info.pid] = info
    return table


def descendants(root: int, table: dict[int, ProcessInfo] | None = None) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> start ticks.

    From ``table`` when given; else by walking down from ``root`` through the kernel's
    ``/proc/<pid>/task/<tid>/children`` lists, which costs what the subtree holds, not
    what the machine runs (a codex server's tree is scanned every half second, and
    scanning all of ``/proc`` each time cost a busy machine seconds per run).
    """
    if table is None and _has_children_lists():
        return _walk_children(root)
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.parent, []).append(info.pid)
    found: dict[int, int] = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found[pid] = table[pid].start_ticks
        stack.extend(children.get(pid, []))
    return found


@cache
def _has_children_lists() -> bool:
    """Whether this kernel has ``/proc/<pid>/task/<tid>/children`` (CONFIG_PROC_CHILDREN)."""
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def _walk_children(root: int) -> dict[int, int]:
    found: dict[int, int] = {}
    stack = _children(root)
    while stack:
        pid = stack.pop()
        info = process_info(pid)
        if info is None or not info.alive or pid in found:
            continue
        found[pid] = info.start_ticks
        stack.extend(_children(pid))
    return found


def _children(pid: int) -> list[int]:
    """The direct children of ``pid``: a child is listed under the thread that forked it."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue  # the thread ended meanwhile
    return found
