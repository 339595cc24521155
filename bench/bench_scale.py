"""Many pipeline runs at once through the deployment, on the dev stack of ``make serve``.

Starts the whole stack (Prefect server on SQLite, a process worker, the dev Vault, the
reference Runs API, the replay model) on free loopback ports in a temporary folder,
sets the replay model's latency, then for each N starts N runs of the ``pipeline``
deployment at once and waits for all of them (bounded by ``--timeout`` per batch), on the
server's event stream rather than by reading the runs (a measurement that polls adds its
own API calls to the server's CPU).
Per batch it prints the wall time and its ratio to the first batch, runs ok/failed,
CPU-seconds per run by process kind (sampled from /proc, see ``bench/_procstats.py``),
peak PSS of the stack per run, and the 503s the runs' Prefect clients saw (retry lines
in the worker's log). With ``--bare`` it also measures, once, the CPU-seconds of the
bare script (the same five codex calls made directly, ``bench_pipeline.bare_run``).

    python bench/bench_scale.py [--sizes 1,5,10,20] [--latency 1.0] [--timeout 900] [--bare]

The stack is stopped by PID at the end, also on failure or Ctrl-C. Prefect runs on
SQLite: the dev stack has no database option yet, so neither has this script.
Results and how to read them: docs/architecture.md, "Costs worth knowing".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from _procstats import KINDS, Sampler, top, wait_quiet  # noqa: E402

from devstack import DevStack, free_port, parse_database, stack_processes  # noqa: E402

DEPLOYMENT = "pipeline/pipeline"
RETRY_503 = re.compile(rb"\b503\b")
VERBOSE = bool(os.environ.get("BENCH_VERBOSE"))
FINAL_TYPES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
BACKSTOP = 15.0
"""Seconds without a final event after which the runs' states are read once."""


@dataclass
class Batch:
    size: int
    wall: float
    ok: int
    failed: int
    cpu: dict[str, float]
    peak_pss_mb: float
    status_503: int


def set_latency(model_url: str, seconds: float) -> None:
    control = model_url.removesuffix("/v1") + "/_replay/latency"
    httpx.put(control, json={"seconds": seconds}, timeout=10).raise_for_status()


def run_batch(stack: DevStack, size: int, timeout: float) -> Batch:
    """Start ``size`` runs at once and wait for all of them, sampling the stack."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    assert stack.info is not None
    log = stack.state_dir / "logs" / "worker.log"
    offset = log.stat().st_size
    members = lambda: stack_processes(stack.state_dir)  # noqa: E731
    # An earlier batch's flow-run processes may still be exiting: their CPU is not ours.
    if not wait_quiet(members):
        print("warning: flow-run processes of an earlier batch are still running")
    sampler = Sampler(members)
    sampler.start()
    started = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: stack.info.api_url}):
        parameters = {"repo": str(stack.info.sample_repo)}
        states = asyncio.run(start_and_wait(size, parameters, deadline=started + timeout))
    wall = time.monotonic() - started
    sampler.stop()
    if VERBOSE:
        print("\n".join(top(sampler)))
    ok = sum(1 for state in states.values() if state == "COMPLETED")
    if VERBOSE and ok < size:
        print(log.read_bytes()[offset:].decode(errors="replace")[-4000:])
    with open(log, "rb") as handle:
        handle.seek(offset)
        seen_503 = sum(1 for line in handle if RETRY_503.search(line))
    cpu = {kind: seconds / size for kind, seconds in sampler.cpu_seconds().items()}
    return Batch(size, wall, ok, size - ok, cpu, sampler.peak_pss_kb / 1024 / size, seen_503)


async def start_and_wait(
    size: int, parameters: dict[str, str], *, deadline: float
) -> dict[UUID, str]:
    """Start ``size`` deployment runs and wait until each is final (or the deadline).

    The end of a run is learnt from the server's event stream, opened before the runs
    start, not by polling: a poll per run and second (20 reads in a 20 s run) cost the
    Prefect server ~0.4 CPU-s, counted as the run's. A read every ``BACKSTOP`` s covers
    a lost event; the states returned are read back from the API.
    """
    from prefect.client.orchestration import get_client
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    # A state's event is named after the state (a stopped run's is "Rejected"): its
    # type is in the resource's labels.
    states = EventFilter(event=EventNameFilter(prefix=["prefect.flow-run."]))
    async with get_client() as client, get_events_subscriber(filter=states) as events:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        ids = [
            (await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)).id
            for _ in range(size)
        ]
        pending = {f"prefect.flow-run.{i}" for i in ids}
        while pending and time.monotonic() < deadline:
            wait = min(BACKSTOP, max(0.0, deadline - time.monotonic()))
            try:
                event = await asyncio.wait_for(anext(events), timeout=wait)
            except TimeoutError:
                pending -= {f"prefect.flow-run.{i}" for i in await final_states(client, ids)}
                continue
            if event.resource.get("prefect.state-type") in FINAL_TYPES:
                pending.discard(event.resource.id)
        states = await final_states(client, ids)
    return {i: states.get(i, "TIMED OUT") for i in ids}


async def final_states(client: object, ids: list[UUID]) -> dict[UUID, str]:
    """The state type of each run among ``ids`` that is in a final state now (one read)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = await client.read_flow_runs(  # type: ignore[attr-defined]
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
    )
    return {r.id: r.state.type.value for r in runs if r.state is not None and r.state.is_final()}


def bare_cpu(model_url: str, folder: Path) -> float:
    """CPU-seconds of the bare script (one process and all it starts), latency as set."""
    code = (
        "import asyncio, sys; from pathlib import Path; sys.path[:0] = sys.argv[1:3];"
        "from bench_pipeline import bare_run; from devstack.replay import replay_config;"
        "asyncio.run(bare_run(replay_config(sys.argv[3]), Path(sys.argv[4])))"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(ROOT / "bench"), model_url, str(folder)],
        check=True,
        env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_batch(rounds: list[Batch]) -> Batch:
    """One batch size's rounds as one: medians of times, sizes and CPU; totals of counts."""
    return Batch(
        rounds[0].size,
        statistics.median(b.wall for b in rounds),
        sum(b.ok for b in rounds),
        sum(b.failed for b in rounds),
        {kind: statistics.median(b.cpu.get(kind, 0.0) for b in rounds) for kind in KINDS},
        statistics.median(b.peak_pss_mb for b in rounds),
        sum(b.status_503 for b in rounds),
    )


def report(batches: list[Batch], bare: float | None) -> None:
    base = batches[0].wall if batches else 1.0
    print()
    print(
        f"{'N':>3} {'wall s':>8} {'x N=1':>6} {'ok':>4} {'fail':>4} {'503s':>5} "
        f"{'PSS/run MB':>10} {'CPU-s/run':>9}"
    )
    for b in batches:
        total = sum(b.cpu.values())
        print(
            f"{b.size:>3} {b.wall:>8.1f} {b.wall / base:>6.2f} {b.ok:>4} {b.failed:>4} "
            f"{b.status_503:>5} {b.peak_pss_mb:>10.0f} {total:>9.2f}"
        )
    print("\nCPU-seconds per run by process kind:")
    print(f"{'kind':<40}" + "".join(f"{'N=' + str(b.size):>9}" for b in batches))
    for kind in KINDS:
        print(f"{kind:<40}" + "".join(f"{b.cpu[kind]:>9.2f}" for b in batches))
    if bare is not None:
        print(f"\nbare script (same 5 codex calls, one process): {bare:.2f} CPU-s per run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10,20", help="batch sizes, comma-separated")
    parser.add_argument("--latency", type=float, default=1.0, help="model latency per turn (s)")
    parser.add_argument("--timeout", type=float, default=900, help="bound per batch (s)")
    parser.add_argument("--bare", action="store_true", help="also measure the bare script's CPU")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the sizes this many times on one stack; print each and the medians",
    )
    parser.add_argument(
        "--database",
        default="sqlite",
        help="the Prefect server's: sqlite, postgres (a cluster of its own) or a URL",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    database = parse_database(args.database)
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-", dir=Path.home()) as tmp,
        tempfile.TemporaryDirectory(prefix="bench-scale-state-") as state,
    ):
        folder = Path(tmp)
        os.chmod(state, 0o711)  # the cluster's own user must reach its folder (root's: 0700)
        stack = DevStack(
            state_dir=Path(state) / "state",
            home=folder / "home",
            port=free_port(),
            database=database,
        )
        with stack:
            assert stack.info is not None
            print(f"stack up in {stack.info.started_in_seconds} s; {os.getloadavg()=}")
            set_latency(stack.info.model_url, args.latency)
            run_batch(stack, 1, args.timeout)  # warm-up: page cache, database, first imports
            bare = bare_cpu(stack.info.model_url, folder) if args.bare else None
            batches = []
            for round_ in range(1, args.rounds + 1):
                for size in sizes:
                    batches.append(run_batch(stack, size, args.timeout))
                    done = batches[-1]
                    cpu = sum(done.cpu.values())
                    print(
                        f"round {round_} N={size}: {done.wall:.1f} s, {done.ok}/{size} ok, "
                        f"{cpu:.2f} CPU-s/run; load {os.getloadavg()[0]:.1f}"
                    )
        report(batches, bare)
        if args.rounds > 1:
            print(f"\nmedians of {args.rounds} rounds (ok, fail, 503s: totals; CPU by kind):")
            report([median_batch([b for b in batches if b.size == n]) for n in sizes], None)


if __name__ == "__main__":
    main()
