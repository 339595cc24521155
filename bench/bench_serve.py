"""Benchmark: seconds until ``orchestrator serve`` reports the dev stack ready (target 60 s).

    .venv/bin/python bench/bench_serve.py [--rounds 3] [--database sqlite|postgres]

Starts the whole stack (Prefect server and UI, worker, dev Vault, Runs API, replay
model; deployments, blocks, automations, the sample repository) in a fresh state folder
on a free port, as a fresh clone's first ``make serve`` does, takes the time until the
command returns ready, and stops it with ``orchestrator stop``; ``--rounds`` times. It
prints each round, the median and its ratio to the 60 s target, and the load average
before and after, since a busy machine starts it slower. The suite checks only that the
stack comes up (tests/deploy/test_served.py); the figure lives here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack import free_port

TARGET_SECONDS = 60.0
CLI = [str(Path(sys.executable).parent / "orchestrator")]  # the console script


def one_round(database: str) -> float:
    """Seconds ``serve`` took to report the stack ready (the stack is stopped after)."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        os.chmod(folder, 0o755)  # the PostgreSQL cluster runs as its own user
        state, home = Path(folder) / "state", Path(folder) / "home"
        command = [*CLI, "serve", "--state-dir", str(state), "--home", str(home)]
        command += ["--port", str(free_port()), "--database", database]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        seconds = time.monotonic() - started
        subprocess.run([*CLI, "stop", "--state-dir", str(state)], capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"serve failed:\n{done.stdout}\n{done.stderr}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="stacks started one after another")
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgres"])
    options = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}")
    times = []
    for n in range(1, options.rounds + 1):
        times.append(one_round(options.database))
        print(f"round {n}: ready in {times[-1]:.1f} s")
    median = statistics.median(times)
    print(f"load after: {os.getloadavg()[0]:.2f}")
    ratio = median / TARGET_SECONDS
    print(f"median {median:.1f} s; ratio to the {TARGET_SECONDS:.0f} s target {ratio:.2f}")


if __name__ == "__main__":
    main()
