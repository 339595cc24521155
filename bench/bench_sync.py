"""Benchmark: runs mirrored per second to the reference Runs API, with and without faults.

    .venv/bin/python bench/bench_sync.py [--runs 1000] [--workers 8] [--fault-rate 0.2]

Starts the reference server (``python -m devstack.runs_api``) on loopback,
creates the runs in a temporary workspace, and syncs them with ``sync_run`` from a
thread pool, then retries the backlog with ``sync_pending`` until nothing is left.
It does this twice, side by side: with no faults, and with ``--fault-rate`` of the
import requests failing (half answered 503 before the commit, half committed and then
dropped unanswered). Each scenario checks the server holds exactly one record per run,
then the table shows syncs per second and the ratio between the two.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack import ServerProcess
from devstack.runs_api import FaultPlan, spawn_server
from orchestrator import Redactor, Settings, Workspace
from orchestrator.runs_api import Backoff, RunsApiClient
from orchestrator.sync import ledger_for, sync_pending, sync_run
from schemas import (
    ArtifactRecord,
    ExecutionMode,
    ModeDecision,
    RunManifest,
    RunStatus,
    SyncState,
    TargetRepo,
    TaskSnapshot,
    TaskSpec,
    utc_now,
)

BACKOFF = Backoff(base=0.01, max_delay=0.05)
"""Short waits: the benchmark measures our overhead, not the backoff."""


@dataclass(frozen=True)
class Outcome:
    name: str
    runs: int
    attempts: int
    failed_first_pass: int
    backlog_passes: int
    seconds: float
    stored: int
    distinct_keys: int

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    half = args.fault_rate / 2
    scenarios = {
        "no faults": FaultPlan(),
        f"{args.fault_rate:.0%} faults": FaultPlan(
            fail_rate=half, drop_rate=half, fail_status=503, seed=args.seed
        ),
    }
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as scratch:
        base = Path(scratch)
        with spawn_server(
            db_path=base / "runs.sqlite3", token=token, log_path=base / "server.log"
        ) as server:
            outcomes = [
                _scenario(
                    server, token, name, plan, base=base, runs=args.runs, workers=args.workers
                )
                for name, plan in scenarios.items()
            ]
    _print(outcomes, workers=args.workers)
    exact = all(o.stored == o.runs == o.distinct_keys for o in outcomes)
    return 0 if exact else 1


def _scenario(
    server: ServerProcess,
    token: str,
    name: str,
    plan: FaultPlan,
    *,
    base: Path,
    runs: int,
    workers: int,
) -> Outcome:
    workspace_id = f"bench-{secrets.token_hex(4)}"
    redactor = Redactor()
    workspace = Workspace.open(Settings(home=base / workspace_id), redactor=redactor)
    manifests = [_manifest(f"task-{n % 10}", f"run-{n:05d}") for n in range(runs)]
    for manifest in manifests:
        workspace.store.create(manifest)
    ledger = ledger_for(workspace)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as admin:
        admin.post("/_faults", json=plan.model_dump()).raise_for_status()
        with RunsApiClient(
            server.url,
            workspace_id,
            token,
            backoff=BACKOFF,
            audit=workspace.audit,
            redactor=redactor,
        ) as client:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                first = list(
                    pool.map(
                        lambda m: sync_run(workspace, client, m.task_id, m.run_id, ledger=ledger),
                        manifests,
                    )
                )
            passes = 0
            while passes < 10:
                passes += 1
                if not sync_pending(workspace, client, ledger=ledger).failed:
                    break
            seconds = time.perf_counter() - started
        admin.delete("/_faults").raise_for_status()
        stored = admin.get(f"/workspaces/{workspace_id}/runs", params={"limit": 1}).json()["total"]
        keys = _distinct_keys(admin, workspace_id)
    records = ledger.list_records()
    return Outcome(
        name=name,
        runs=runs,
        attempts=sum(r.attempts for r in records),
        failed_first_pass=sum(r.state is SyncState.FAILED for r in first),
        backlog_passes=passes,
        seconds=seconds,
        stored=stored,
        distinct_keys=keys,
    )


def _distinct_keys(admin: httpx.Client, workspace_id: str) -> int:
    keys: set[str] = set()
    offset = 0
    while True:
        page = admin.get(
            f"/workspaces/{workspace_id}/runs", params={"limit": 1000, "offset": offset}
        ).json()
        keys.update(item["idempotencyKey"] for item in page["items"])
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return len(keys)


def _manifest(task_id: str, run_id: str) -> RunManifest:
    now = utc_now()
    spec = TaskSpec(id=task_id, title="Bench", goal="Mirror me.", target=TargetRepo(repo="repo"))
    return RunManifest(
        task_id=task_id,
        run_id=run_id,
        env="dev",
        status=RunStatus.SUCCEEDED,
        created_at=now,
        updated_at=now,
        finished_at=now,
        task=TaskSnapshot(
            path="tasks/bench.yaml",
            sha256="0" * 64,
            spec=spec,
            repo_path="/tmp/repo",
            base_commit="0" * 40,
        ),
        mode=ModeDecision(mode=ExecutionMode.MCP, reason="execution.parallel is false"),
        artifacts=[ArtifactRecord(name="plan.json", sha256="1" * 64, size=10, created_at=now)],
    )


def _print(outcomes: list[Outcome], *, workers: int) -> None:
    print(f"sync benchmark: reference Runs API on loopback, {workers} worker threads")
    header = (
        f"{'scenario':<12} {'runs':>6} {'attempts':>9} {'1st-pass failed':>16} "
        f"{'backlog passes':>15} {'seconds':>8} {'syncs/s':>8} {'stored':>7} {'distinct':>9}"
    )
    print(header)
    for o in outcomes:
        print(
            f"{o.name:<12} {o.runs:>6} {o.attempts:>9} {o.failed_first_pass:>16} "
            f"{o.backlog_passes:>15} {o.seconds:>8.2f} {o.per_second:>8.0f} {o.stored:>7} "
            f"{o.distinct_keys:>9}"
        )
    if len(outcomes) == 2:
        ratio = outcomes[1].per_second / outcomes[0].per_second
        print(f"ratio {outcomes[1].name} / {outcomes[0].name}: {ratio:.2f}x the syncs per second")


if __name__ == "__main__":
    sys.exit(main())
