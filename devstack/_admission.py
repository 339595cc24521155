"""Admission control: how many flow runs the work pool runs at once on this machine.

The stack's work pool gets a concurrency limit (Prefect's own, ``concurrency_limit`` of
the pool): a flow run over the limit is not cancelled, it stays Scheduled (shown Late
once its start time has passed) until a slot frees, and the worker then starts it.

The default is sized to what the machine holds, from what a sample run costs on the
2-core reference machine (issue 15): 16-18 CPU-seconds over ~23 s alone, i.e. about
three quarters of a core while it runs, and ~0.1 GB of memory per run on top of the
stack's own ~0.9 GB. Runs against a real model wait on it most of the time, so half a
core per run is the CPU share we plan for; memory keeps a margin on top.
"""

from __future__ import annotations

import os
from pathlib import Path

CORES_PER_RUN = 0.5
MEMORY_PER_RUN = 150 * 2**20
"""Bytes a run holds at its peak (measured ~0.1 GB; the margin is for codex and tests)."""
STACK_MEMORY = 1 * 2**30
"""Bytes the stack itself holds with one run (Prefect server, worker, servers)."""
MEMINFO = Path("/proc/meminfo")


def default_max_runs(*, cpus: int | None = None, memory: int | None = None) -> int:
    """The limit for this machine: what its cores and its free memory both hold, at least 1.

    Args:
        cpus: Cores this process may use (default: its CPU affinity).
        memory: Bytes available (default: ``MemAvailable`` of ``/proc/meminfo``).
    """
    cpus = cpus if cpus is not None else len(os.sched_getaffinity(0))
    memory = memory if memory is not None else available_memory()
    by_cpu = int(cpus / CORES_PER_RUN)
    by_memory = (memory - STACK_MEMORY) // MEMORY_PER_RUN
    return max(1, min(by_cpu, by_memory))


def available_memory(meminfo: Path = MEMINFO) -> int:
    """``MemAvailable`` in bytes (the whole memory where the kernel does not say)."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
