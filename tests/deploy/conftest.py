"""The dev stack of ``make serve``, started once for these tests through the real CLI.

``orchestrator serve`` runs as a subprocess on a free port, with its state folder and
orchestrator home in a temporary folder (a fresh Prefect database, like a fresh clone).
At the end ``orchestrator stop`` runs, and the teardown fails if any process of the
stack (recorded ones, their descendants, their sessions: flow runs, codex servers)
is still alive.

Two stacks: ``served`` (the default: Prefect on SQLite, the work pool's limit sized to
the machine) and ``served_postgres`` (``--database postgres --max-runs 2 --workers 2``:
Prefect on a PostgreSQL cluster of its own, started and stopped by PID with the rest,
and two subtask workers that its parallel runs fan out to). A test that
runs on both takes the fixture ``any_served``, parametrized over the two.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolUpdate

from devstack import (
    StackInfo,
    free_port,
    read_stack,
    stack_processes,
)
from orchestrator.supervisor import still_running
from tests.helpers.folders import reachable_folder
from tests.helpers.webhook import Webhook, webhook_receiver

HERE = Path(__file__).resolve().parent
CLI = [str(Path(sys.executable).parent / "orchestrator")]  # the real console script
SERVE_TIMEOUT = 120
STOP_TIMEOUT = 60
POSTGRES_MAX_RUNS = 2
SUBTASK_WORKERS = 2
"""Subtask workers of ``served_postgres`` (``--workers``; tests/deploy/test_fanout.py)."""
USER_JITTER = "0.4"
"""A Prefect client setting the user gives ``orchestrator serve``: the worker must keep it."""


@dataclass(frozen=True)
class Served:
    """A running dev stack and how long ``orchestrator serve`` took to return."""

    info: StackInfo
    state_dir: Path
    ready_seconds: float
    output: str
    webhook: Webhook | None = None
    """Where its notification automations POST (``--notify-webhook``), when given."""

    @property
    def api_url(self) -> str:
        return self.info.api_url

    @property
    def home(self) -> Path:
        return self.info.home


def orchestrator(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``orchestrator`` command line as a subprocess (a separate process)."""
    base = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_HOME"}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env={**base, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The SQLite stack, notifying a webhook receiver of the test when a run waits."""
    with webhook_receiver() as webhook:
        base = tmp_path_factory.mktemp("served")
        for stack in _serve(base, "--notify-webhook", webhook.url):
            yield dataclasses.replace(stack, webhook=webhook)


@pytest.fixture(scope="session")
def served_postgres() -> Iterator[Served]:
    """The stack with its Prefect server on PostgreSQL, two flow runs at a time.

    In a folder PostgreSQL's own user can reach (pytest's are 0700 root).
    """
    with reachable_folder("served-postgres-") as base:
        yield from _serve(
            base,
            "--database", "postgres",
            "--max-runs", str(POSTGRES_MAX_RUNS),
            "--workers", str(SUBTASK_WORKERS),
        )  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def any_served(request: pytest.FixtureRequest) -> Served:
    """Each stack in turn: the test runs on SQLite and on PostgreSQL."""
    name = "served" if request.param == "sqlite" else "served_postgres"
    stack: Served = request.getfixturevalue(name)
    return stack


def _serve(base: Path, *options: str) -> Iterator[Served]:
    state_dir, home = base / "state", base / "home"
    started = time.monotonic()
    done = orchestrator(
        "serve", "--state-dir", str(state_dir), "--home", str(home), "--port", str(free_port()),
        *options,
        timeout=SERVE_TIMEOUT, env={"PREFECT_CLIENT_RETRY_JITTER_FACTOR": USER_JITTER},
    )  # fmt: skip
    ready_seconds = time.monotonic() - started
    try:
        assert done.returncode == 0, f"serve failed:\n{done.stdout}\n{done.stderr}"
        info = read_stack(state_dir).info
        assert info is not None
        yield Served(info, state_dir, ready_seconds, done.stdout)
    finally:
        _stop_and_check(state_dir)


def _stop_and_check(state_dir: Path) -> None:
    """``orchestrator stop``; fail if any process of the stack outlives it."""
    processes = stack_processes(state_dir)
    done = orchestrator("stop", "--state-dir", str(state_dir), timeout=STOP_TIMEOUT)
    left = still_running(processes)
    assert done.returncode == 0, f"stop failed:\n{done.stdout}\n{done.stderr}"
    assert not left, f"processes left after 'orchestrator stop': {left}"


@contextmanager
def pool_limit(client: SyncPrefectClient, served: Served, limit: int) -> Iterator[None]:
    """The work pool's concurrency limit set to ``limit``, then back to what serve set."""
    pool = served.info.work_pool
    client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=limit))
    try:
        yield
    finally:
        client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=served.info.max_runs))
