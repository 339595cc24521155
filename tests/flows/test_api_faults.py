"""Transient Prefect API errors never fail a run; a run the API refuses for good resumes.

The pipeline talks to the real Prefect test server through a loopback proxy
(tests/helpers/faulty_api.py) that answers 503, as a locked SQLite database does, to a
share of the writes that create flow runs and task runs and set their states, with the
Prefect client's retry settings of the worker (orchestrator.prefect_retries).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prefect.exceptions import PrefectHTTPStatusError

from flows.pipeline import pipeline
from orchestrator.lifecycle import continues_on_resume
from orchestrator.prefect_retries import PREFECT_CLIENT_RETRY_DEFAULTS
from orchestrator.runstore import load_manifest
from schemas import RunManifest, RunStatus, StepStatus, SyncState, schema_errors
from tests.conftest import PrefectApi
from tests.flows.conftest import Stack
from tests.flows.test_resume import EXPECTED_DIFF, result_diff
from tests.helpers.faulty_api import FaultyApi, every_nth

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@asynccontextmanager
async def through(proxy: FaultyApi, **overrides: str) -> AsyncIterator[None]:
    """This process's Prefect client talks to ``proxy`` with the worker's retry settings.

    At the end Prefect's background log and event workers, which were started against
    the proxy, are drained while it still answers (as ``prefect_test_harness`` drains
    its own before it stops the server).
    """
    import prefect.settings
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    client = {**PREFECT_CLIENT_RETRY_DEFAULTS, **overrides}
    updates: dict[Any, Any] = {getattr(prefect.settings, k): v for k, v in client.items()}
    with temporary_settings(updates={PREFECT_API_URL: proxy.url, **updates}):
        try:
            yield
        finally:
            for drained in (APILogWorker.drain_all(), EventsWorker.drain_all()):
                if inspect.isawaitable(drained):
                    await drained


def manifest_of(stack: Stack, run_id: str) -> RunManifest:
    return load_manifest(stack.workspace.store.find(run_id).manifest_path)


async def check_flow_runs_completed(manifest: RunManifest) -> None:
    """On the real server (not through the proxy): the manager and every phase Completed."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        ids = [manifest.flow_run_id, *(getattr(manifest.phases, p).flow_run_id for p in PHASES)]
        runs = [await client.read_flow_run(i) for i in ids if i]
    assert len(runs) == 1 + len(PHASES)
    assert all(r.state is not None and r.state.is_completed() for r in runs), runs


PHASES = ("plan", "build", "test", "review")


async def test_a_run_through_an_api_refusing_every_third_write_loses_nothing(
    stack: Stack, prefect_api: PrefectApi
) -> None:
    with FaultyApi(prefect_api.url, rule=every_nth(3)) as proxy:
        async with through(proxy):
            summary = await pipeline(
                task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
            )

    assert summary["status"] == "succeeded", summary
    assert len(proxy.counts.refused) >= 5, proxy.counts
    assert any("/set_state" in r for r in proxy.counts.refused), proxy.counts
    assert any(r.endswith("/task_runs/") for r in proxy.counts.refused), proxy.counts
    manifest = manifest_of(stack, summary["run_id"])
    assert schema_errors("run-manifest", manifest.model_dump(mode="json")) is None
    assert manifest.errors == []
    assert all(getattr(manifest.phases, p).status is StepStatus.SUCCEEDED for p in PHASES)
    assert all(s.builder_calls == 1 for s in manifest.subtasks)
    assert result_diff(stack.repo, manifest) == EXPECTED_DIFF.read_text()
    assert manifest.sync is not None and manifest.sync.state is SyncState.SYNCED
    await check_flow_runs_completed(manifest)


async def test_a_run_the_api_refuses_past_its_bound_fails_with_the_reason_and_resumes(
    stack: Stack, prefect_api: PrefectApi
) -> None:
    def planned() -> bool:
        refs = stack.workspace.store.list_runs()
        if not refs:
            return False
        return load_manifest(refs[0].manifest_path).phases.plan.status is StepStatus.SUCCEEDED

    # Once the plan is done, every write is refused: one retry each, then the run fails.
    outage = FaultyApi(prefect_api.url, rule=lambda count, method, path: planned())
    with outage as proxy:
        async with through(proxy, PREFECT_CLIENT_MAX_RETRIES="1"):
            with pytest.raises(PrefectHTTPStatusError) as failure:
                await pipeline(
                    task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
                )

    (ref,) = stack.workspace.store.list_runs()
    failed = manifest_of(stack, ref.run_id)
    assert failed.status is RunStatus.FAILED, failed.status
    assert "503 Service Unavailable" in (failed.status_reason or ""), failed.status_reason
    assert failed.phases.build.status is not StepStatus.SUCCEEDED
    assert proxy.counts.refused, failure.value
    assert failed.errors[-1].type == "PrefectHTTPStatusError"
    assert continues_on_resume(failed)

    summary = await pipeline(run_id=ref.run_id)

    assert summary["status"] == "succeeded", summary
    resumed = manifest_of(stack, ref.run_id)
    assert resumed.phases.plan.steps[0].attempt == 1  # the plan was not asked again
    assert all(s.builder_calls == 1 for s in resumed.subtasks)
    assert result_diff(stack.repo, resumed) == EXPECTED_DIFF.read_text()
