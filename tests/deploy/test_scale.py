"""Many runs on one machine, on both Prefect databases: none lost, admission control queues.

The tests taking ``any_served`` run on the SQLite stack and on the PostgreSQL one. Runs
go through the deployments to the work pool, where the real worker starts each in a
process of its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from prefect.client.schemas.objects import StateType

from devstack import read_cloud_token, read_stack
from devstack._prefect import DATABASE_URL_ENV
from devstack.vault import read_state
from orchestrator.runs_api import idempotency_key
from schemas import RunStatus, SyncState, schema_errors
from tests.helpers.canary import scan_cmdlines_for, scan_paths_for

from .conftest import POSTGRES_MAX_RUNS, Served, pool_limit
from .helpers import (
    Occupancy,
    cheapest_task,
    manifest_of,
    max_overlap,
    prefect_client,
    trigger,
    wait_final,
)

pytestmark = pytest.mark.integration

AT_ONCE = {"sqlite": 10, "postgres": 20}
"""Pipelines started (and admitted) at once on each database."""
BATCH_TIMEOUT = 900.0
"""For the whole batch: ~10 CPU-seconds a run (the cheapest sample task) on 2 busy cores."""
ADMITTED = POSTGRES_MAX_RUNS
QUEUED_RUNS = 4


def test_pipelines_started_at_once_all_succeed_validate_and_are_mirrored_once(
    any_served: Served, tmp_path: Path
) -> None:
    """10 at once on SQLite, 20 on PostgreSQL, all admitted at once (the pool's limit set
    to the batch): none lost to the API, each manifest valid, each run mirrored once."""
    served = any_served
    at_once = AT_ONCE["sqlite" if served.info.database == "sqlite" else "postgres"]
    task_file = cheapest_task(tmp_path / "rename-word-count.yaml")
    with prefect_client(served.api_url) as client, pool_limit(client, served, at_once):
        runs = [
            trigger(
                client,
                "pipeline/pipeline",
                task_file=str(task_file),
                env="dev",
                repo=str(served.info.sample_repo),
            )
            for _ in range(at_once)
        ]
        deadline = time.monotonic() + BATCH_TIMEOUT
        finals = [wait_final(client, r.id, timeout=deadline - time.monotonic()) for r in runs]
    assert [f.state.type if f.state else None for f in finals] == [StateType.COMPLETED] * at_once
    keys = []
    for run in runs:
        path, manifest = manifest_of(served.home, run.id)
        assert schema_errors("run-manifest", json.loads(path.read_text())) is None
        assert manifest.status is RunStatus.SUCCEEDED
        assert manifest.sync is not None and manifest.sync.state is SyncState.SYNCED
        keys.append(idempotency_key(manifest.task_id, manifest.run_id))
    mirrored = [item["idempotencyKey"] for item in mirrored_runs(served)]
    assert sorted(k for k in mirrored if k in keys) == sorted(keys)  # each exactly once


def test_runs_over_the_pool_limit_wait_scheduled_and_all_finish(served_postgres: Served) -> None:
    """``serve --max-runs 2``: four runs started at once, two at a time (on one database
    only: the limit is the server's, whatever it stores its data in)."""
    served = served_postgres
    assert served.info.max_runs == ADMITTED
    with prefect_client(served.api_url) as client:
        runs = [trigger(client, "sync-backlog/sync-backlog") for _ in range(QUEUED_RUNS)]
        finals = [wait_final(client, r.id, timeout=BATCH_TIMEOUT) for r in runs]
        histories = [Occupancy.of(client, r.id) for r in runs]
    assert [f.state.type if f.state else None for f in finals] == [StateType.COMPLETED] * 4
    assert max_overlap(histories) == ADMITTED
    # The runs over the limit were neither refused nor cancelled: they waited, Scheduled
    # (Late once past their start time), until an admitted run had ended.
    first_end = min(h.end for h in histories)
    waited = [h for h in histories if h.start >= first_end]
    assert len(waited) == QUEUED_RUNS - ADMITTED
    assert all(h.waited_as <= {"Scheduled", "Late"} and h.waited_as for h in waited)


def test_serve_sets_the_pool_limit_it_prints(any_served: Served) -> None:
    served = any_served
    with prefect_client(served.api_url) as client:
        pool = client.read_work_pool(served.info.work_pool)
    assert served.info.max_runs is not None and served.info.max_runs >= 1
    assert pool.concurrency_limit == served.info.max_runs
    assert f"at most {served.info.max_runs} runs at once" in served.output


def test_sqlite_stays_the_default(served: Served) -> None:
    assert served.info.database == "sqlite"
    assert (served.state_dir / "prefect-home" / "prefect.db").is_file()
    assert not (served.state_dir / "postgres").exists()


def test_postgres_holds_the_prefect_data_and_its_password_stays_in_memory(
    served_postgres: Served,
) -> None:
    served = served_postgres
    shown = served.info.database
    assert shown.startswith("postgresql://prefect@127.0.0.1:"), shown
    assert f"database     {shown}" in served.output
    assert not (served.state_dir / "prefect-home" / "prefect.db").exists()
    assert (served.state_dir / "postgres" / "PG_VERSION").is_file()
    url = server_database_url(served)
    password = url.partition("://prefect:")[2].partition("@")[0]
    assert url.startswith("postgresql+asyncpg://") and len(password) >= 20
    assert scan_paths_for(password, [served.state_dir, served.home]) == []
    assert scan_cmdlines_for(password) == []


def server_database_url(served: Served) -> str:
    """The database URL in the Prefect server's environment (where alone it is given)."""
    (server,) = [s for s in read_stack(served.state_dir).services if s.name == "prefect-server"]
    environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    (url,) = [v.partition(b"=")[2] for v in environ if v.startswith(DATABASE_URL_ENV.encode())]
    return url.decode()


def mirrored_runs(served: Served) -> list[dict[str, object]]:
    """Every run the stack's reference Runs API holds, read with the token a run uses."""
    vault = read_state(served.state_dir)
    assert vault is not None
    token = read_cloud_token(served.state_dir, vault).get_secret_value()
    url = f"{served.info.runs_api_url}/workspaces/{served.info.cloud_workspace}/runs"
    headers = {"authorization": f"Bearer {token}"}
    response = httpx.get(url, params={"limit": 1000}, headers=headers, timeout=30)
    response.raise_for_status()
    items: list[dict[str, object]] = response.json()["items"]
    return items
