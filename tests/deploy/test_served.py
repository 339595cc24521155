"""``make serve`` end to end: ready in time, deployments from prefect.yaml, real runs.

Every run goes through the Prefect API to the work pool, where the real worker picks
it up and runs it in a process of its own (codex against the replay model, the dev
Vault, the reference Runs API).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelling

from devstack import read_secret_id, read_stack, stack_processes
from flows.heartbeats import AUTOMATION_NAME
from orchestrator.prefect_retries import PREFECT_CLIENT_RETRY_DEFAULTS
from schemas import RunStatus, schema_errors
from tests.helpers.waiting import wait_for

from .conftest import USER_JITTER, Served, orchestrator, pool_limit
from .helpers import (
    EXAMPLES,
    Occupancy,
    approval_task,
    cheapest_task,
    manifest_of,
    manifests,
    max_overlap,
    prefect_client,
    trigger,
    wait_final,
)

pytestmark = pytest.mark.integration

DEPLOYMENTS = [
    "build-subtask/build-subtask",
    "build/build",
    "nightly/nightly",
    "pipeline/pipeline",
    "plan/plan",
    "review/review",
    "sync-backlog/sync-backlog",
    "test/test",
]


def test_serve_is_ready_and_says_where_everything_is(served: Served) -> None:
    """Ready (the fixture waits up to SERVE_TIMEOUT); how fast, against the 60 s target,
    is bench/bench_serve.py's figure: a busy machine starts it slower."""
    assert re.search(r"^dev stack ready in \d+\.\d s:$", served.output, re.MULTILINE), served.output
    ui = httpx.get(served.info.ui_url, timeout=10)
    assert ui.status_code == 200 and "<html" in ui.text.lower()
    workers = httpx.post(f"{served.api_url}/work_pools/local/workers/filter", json={}, timeout=10)
    assert [w["status"] for w in workers.json()] == ["ONLINE"]
    assert f"Prefect UI: {served.info.ui_url}" in served.output
    socket = served.state_dir / "forkserver" / "socket"
    assert f"  flow runs    forked from the fork server at {socket}\n" in served.output
    assert sorted(served.info.deployments) == DEPLOYMENTS


def test_serve_sets_up_the_crash_automation_and_the_worker_heartbeat(served: Served) -> None:
    found = httpx.post(f"{served.api_url}/automations/filter", json={}, timeout=10)
    [crash] = [a for a in found.json() if a["name"] == AUTOMATION_NAME]
    assert crash["enabled"] and crash["trigger"]["posture"] == "Proactive"
    assert crash["trigger"]["within"] == 90.0
    assert [(a["type"], a["state"]) for a in crash["actions"]] == [
        ("change-flow-run-state", "CRASHED")
    ]
    again = orchestrator(
        "setup", "automations", timeout=60, env={"PREFECT_API_URL": served.api_url}
    )
    assert again.returncode == 0, again.stderr
    assert f"automation '{AUTOMATION_NAME}' unchanged ({crash['id']})" in again.stdout
    [worker] = [s for s in read_stack(served.state_dir).services if s.name == "worker"]
    environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    assert b"PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30" in environ
    assert b"PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED=false" in environ  # flow runs inherit


def test_the_worker_secret_is_only_in_its_0600_file_and_environments(served: Served) -> None:
    secret_file = served.state_dir / "approle-dev.env"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret_id = read_secret_id(served.state_dir).get_secret_value()
    assert len(secret_id) > 8
    for pid in stack_processes(served.state_dir):
        with contextlib.suppress(OSError):
            assert secret_id.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert secret_id not in (served.state_dir / "stack.json").read_text()
    # The fork server imports Prefect without it; its children get it from their client.
    [forkserver] = [s for s in read_stack(served.state_dir).services if s.name == "forkserver"]
    assert secret_id.encode() not in Path(f"/proc/{forkserver.pid}/environ").read_bytes()
    assert secret_id not in "".join(
        log.read_text() for log in (served.state_dir / "logs").iterdir()
    )


def test_nightly_schedule_reads_back_through_the_api(served: Served) -> None:
    with prefect_client(served.api_url) as client:
        deployment = client.read_deployment_by_name("nightly/nightly")
        assert len(deployment.schedules) == 1
        schedule = deployment.schedules[0]
        assert schedule.active
        assert schedule.schedule.cron == "0 2 * * *"  # type: ignore[union-attr]
        assert schedule.schedule.timezone == "UTC"  # type: ignore[union-attr]
        first = next_scheduled_start(client, deployment.id)
    assert (first.hour, first.minute) == (2, 0)
    assert first - datetime.now(UTC) <= timedelta(days=1)


def next_scheduled_start(client: SyncPrefectClient, deployment_id: UUID) -> datetime:
    """The earliest run the server scheduled for the deployment (waits up to 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        )
        starts = sorted(r.expected_start_time for r in runs if r.expected_start_time)
        if starts:
            return starts[0].astimezone(UTC)
        assert time.monotonic() < deadline, "the server scheduled no nightly run"
        time.sleep(0.5)


def test_pipeline_deployment_runs_a_task_to_a_valid_manifest(served: Served) -> None:
    task_file = EXAMPLES / "tasks" / "add-text-helpers.yaml"
    with prefect_client(served.api_url) as client:
        flow_run = trigger(
            client,
            "pipeline/pipeline",
            task_file=str(task_file),
            env="dev",
            repo=str(served.info.sample_repo),
        )
        final = wait_final(client, flow_run.id)
    assert final.state is not None and final.state.is_completed(), final.state
    path, manifest = manifest_of(served.home, flow_run.id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.task.path == str(task_file)
    assert manifest.deployment is not None and manifest.deployment.name == "pipeline/pipeline"
    assert manifest.sync is not None and manifest.sync.state.value == "synced"
    assert schema_errors("run-manifest", json.loads(path.read_text())) is None
    assert final.name == f"{manifest.task_id}/{manifest.run_id}"
    # Forked from the fork server, not a new interpreter (docs/deployments.md, "Costs").
    log = served.state_dir / "logs" / "forkserver.log"
    ended = re.compile(rf"flow run {flow_run.id}: pid \d+ ended \(exit 0\)")
    assert wait_for(lambda: ended.search(log.read_text()), timeout=60)


QUEUED = 5
NIGHTLY_POOL_LIMIT = 3
"""The pool's limit while the nightly test runs: the nightly run and two pipelines."""
NIGHTLY_TIMEOUT = 300.0


def test_nightly_run_starts_five_queued_tasks_as_concurrent_pipeline_runs(
    served: Served, tmp_path: Path
) -> None:
    queue = served.home / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    for n in range(QUEUED):
        cheapest_task(queue / f"rename-{n}.yaml")
    no_nightly_tasks = tmp_path / "tasks"
    no_nightly_tasks.mkdir()
    before = {p for p, _ in manifests(served.home)}
    with prefect_client(served.api_url) as client:
        with pool_limit(client, served, NIGHTLY_POOL_LIMIT):
            nightly = trigger(
                client,
                "nightly/nightly",
                tasks_dir=str(no_nightly_tasks),
                repo=str(served.info.sample_repo),
            )
            final = wait_final(client, nightly.id, timeout=NIGHTLY_TIMEOUT)
        runs = pipeline_runs_of(client, nightly.id)
        held = [Occupancy.of(client, r.id) for r in runs]
        nightly_held = Occupancy.of(client, nightly.id)
        [summary] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["nightly-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[nightly.id]),
            )
        )
    assert final.state is not None and final.state.is_completed(), final.state
    assert [r.state.type if r.state else None for r in runs] == [StateType.COMPLETED] * QUEUED
    # Concurrent, as many at once as the pool's limit leaves beside the nightly run, never more;
    # the others waited Scheduled (Late) for a slot.
    assert max_overlap(held) == NIGHTLY_POOL_LIMIT - 1
    assert max_overlap([*held, nightly_held]) == NIGHTLY_POOL_LIMIT
    first_end = min(h.end for h in held)
    waited = [h for h in held if h.start >= first_end]
    assert len(waited) >= QUEUED - (NIGHTLY_POOL_LIMIT - 1)
    assert all(h.waited_as <= {"Scheduled", "Late"} and h.waited_as for h in waited)

    new = {str(m.flow_run_id): m for p, m in manifests(served.home) if p not in before}
    assert sorted(new) == sorted(str(r.id) for r in runs)
    assert all(m.status is RunStatus.SUCCEEDED for m in new.values())
    assert all(Path(m.task.path).parent == queue / "done" for m in new.values())
    # started by the nightly run, they count against the nightly deployment's day
    deployments = {m.deployment.name if m.deployment else None for m in new.values()}
    assert deployments == {"nightly/nightly"}
    assert sorted(p.name for p in queue.iterdir()) == ["done"]
    table = str(summary.data)
    ui = f"{served.info.ui_url.rstrip('/')}/v2/runs/flow-run"
    for run in runs:
        manifest = new[str(run.id)]
        link = f"[{run.id}]({ui}/{run.id})"
        assert f"| queue | succeeded | rename-word-count/{manifest.run_id} | {link} |" in table


def pipeline_runs_of(client: SyncPrefectClient, nightly_id: UUID) -> list[FlowRun]:
    """The pipeline deployment runs a nightly flow run started."""
    deployment = client.read_deployment_by_name("pipeline/pipeline")
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[nightly_id])
        ),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
    )


def test_a_deployed_run_paused_at_the_plan_gate_is_approved_from_another_process(
    served: Served, tmp_path: Path
) -> None:
    task = approval_task(tmp_path)
    with prefect_client(served.api_url) as client:
        flow_run = trigger(
            client, "pipeline/pipeline", task_file=str(task), repo=str(served.info.sample_repo)
        )
        wait_paused(client, flow_run.id)

        approved = orchestrator(
            "approve",
            str(flow_run.id),
            "--reason",
            "looks right",
            "--approver",
            "Grace",
            timeout=120,
            env={"PREFECT_API_URL": served.api_url},
        )
        assert approved.returncode == 0, approved.stdout + approved.stderr
        final = wait_final(client, flow_run.id)

    assert final.state is not None and final.state.is_completed(), final.state
    _, manifest = manifest_of(served.home, flow_run.id)
    assert manifest.status is RunStatus.SUCCEEDED
    # make serve's notification automation told the webhook the run waited at its gate
    assert served.webhook is not None
    waiting = served.webhook.wait_for(manifest.run_id, "waits for a decision", 90)
    assert waiting["subject"].endswith("waits for a decision at its plan gate")
    assert f"{served.info.ui_url.rstrip('/')}/v2/runs/flow-run/" in waiting["body"]
    plan = manifest.approval("plan")
    assert plan is not None
    assert (plan.decision.value, plan.approver, plan.channel.value) == ("approve", "Grace", "cli")


def test_a_deployed_run_cancelled_while_it_waits_ends_cancelled_and_its_process_goes(
    served: Served, tmp_path: Path
) -> None:
    """Cancel from the UI (Cancelling, as its button sets): the worker signals its flow-run
    command, which passes it to the forked child; Prefect's engine ends the run Cancelled."""
    task = approval_task(tmp_path)
    log = served.state_dir / "logs" / "forkserver.log"
    with prefect_client(served.api_url) as client:
        flow_run = trigger(
            client, "pipeline/pipeline", task_file=str(task), repo=str(served.info.sample_repo)
        )
        wait_paused(client, flow_run.id)
        forked = re.search(rf"flow run {flow_run.id}: pid (\d+)\n", log.read_text())
        assert forked, "the run was not forked"
        client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
        final = wait_final(client, flow_run.id)
    assert final.state is not None and final.state.type is StateType.CANCELLED, final.state
    pid = forked.group(1)
    assert wait_for(lambda: f"pid {pid} ended" in log.read_text() or None, timeout=60)
    assert not Path(f"/proc/{pid}").exists()


def wait_paused(client: SyncPrefectClient, flow_run_id: UUID, *, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_paused():
            return
        assert state is None or not state.is_final(), f"the run ended {state.name}"
        assert time.monotonic() < deadline, "the run never paused at the plan gate"
        time.sleep(0.5)


def test_the_worker_has_the_client_retry_bound_and_keeps_the_users_settings(
    served: Served,
) -> None:
    (worker,) = [s for s in read_stack(served.state_dir).services if s.name == "worker"]
    raw = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    environ = dict(item.decode().partition("=")[::2] for item in raw if item)
    assert (
        environ["PREFECT_CLIENT_MAX_RETRIES"]
        == PREFECT_CLIENT_RETRY_DEFAULTS["PREFECT_CLIENT_MAX_RETRIES"]
    )
    assert environ["PREFECT_CLIENT_RETRY_EXTRA_CODES"] == "504"
    assert environ["PREFECT_CLIENT_RETRY_JITTER_FACTOR"] == USER_JITTER
