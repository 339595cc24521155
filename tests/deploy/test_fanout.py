"""Subtasks fanned out to workers that share only the Prefect API, a git remote and results.

``served_postgres`` runs with ``--workers 2`` (``orchestrator serve``): two more process
workers on the ``subtasks`` pool, each with its own ORCHESTRATOR_HOME and queue, one
bare git remote of the sample repository and one result folder. A manager in a process
and home of its own builds the parallel sample task through them; the same task built
on one machine gives the same result branch. A killed manager resumes without
dispatching again; a whole worker killed mid-build (its machine lost) has its subtask
rebuilt on the other worker once the crash automation sets the build Crashed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterId,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)

from devstack import read_stack, run_environ
from devstack._fanout import (
    REMOTE_DIR,
    RESULTS_DIR,
    SUBTASK_DEPLOYMENT,
    WORKERS_DIR,
    manager_environ,
    spawn_subtask_worker,
    subtask_service,
    worker_queue,
)
from devstack._parts import Starting
from flows.heartbeats import CRASH_AFTER_SECONDS, CRASH_MESSAGE, MIN_CRASH_AFTER_SECONDS
from orchestrator.gitops import git
from orchestrator.literal import md_text
from orchestrator.supervisor import snapshot
from schemas import RunManifest, RunStatus, utc_now
from tests.helpers.waiting import wait_for

from .conftest import CLI, SUBTASK_WORKERS, Served, orchestrator
from .helpers import EXAMPLES, manifests, prefect_client

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 300
CRASH_DEADLINE = MIN_CRASH_AFTER_SECONDS + 30 + 60  # window + a heartbeat + a busy machine
TASK = EXAMPLES / "tasks" / "add-word-stats.yaml"


def manager_env(served: Served, home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env |= run_environ(served.state_dir, home=home)  # secret_id in the environment only
    return env | {"PREFECT_API_URL": served.api_url, "COLUMNS": "200", **extra}


def run_task(
    served: Served, home: Path, target: Path, extra: dict[str, str], *options: str
) -> subprocess.Popen[str]:
    """``orchestrator run`` of the parallel sample task as its own manager process."""
    return subprocess.Popen(
        [*CLI, "run", str(TASK), "--repo", str(target), "--cloud-block", "", *options],
        env=manager_env(served, home, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def only_run(home: Path) -> RunManifest:
    (found,) = [m for _, m in manifests(home)]
    return found


def result_tree(manifest: RunManifest) -> str:
    assert manifest.result is not None and manifest.result.branch
    return git(Path(manifest.task.repo_path), "rev-parse", f"{manifest.result.branch}^{{tree}}")


def test_serve_workers_start_subtask_workers_with_homes_a_remote_and_a_result_folder(
    served_postgres: Served,
) -> None:
    served = served_postgres
    assert served.info.subtask_workers == SUBTASK_WORKERS
    assert "on 2 workers of pool subtasks" in served.output
    assert git(served.state_dir / REMOTE_DIR, "rev-parse", "--is-bare-repository") == "true"
    with prefect_client(served.api_url) as client:
        workers = client.read_workers_for_work_pool("subtasks")
        queues = {q.name for q in client.read_work_queues(work_pool_name="subtasks")}
    assert len([w for w in workers if w.status == "ONLINE"]) == SUBTASK_WORKERS
    assert {worker_queue(i) for i in range(1, SUBTASK_WORKERS + 1)} <= queues


def test_two_workers_build_the_subtasks_and_the_result_equals_one_machines(
    served_postgres: Served, tmp_path: Path
) -> None:
    served = served_postgres
    remote, results = served.state_dir / REMOTE_DIR, served.state_dir / RESULTS_DIR
    worker_homes = [
        served.state_dir / WORKERS_DIR / str(i) / "home" for i in range(1, SUBTASK_WORKERS + 1)
    ]
    queues = [worker_queue(i) for i in range(1, SUBTASK_WORKERS + 1)]
    queue_of = dict(zip(map(str, worker_homes), queues, strict=True))
    targets = {}
    for name in ("fanned", "local"):
        targets[name] = tmp_path / name / "repo"
        git(tmp_path, "clone", "--quiet", str(remote), str(targets[name]))
    fanout = manager_environ(remote=remote, queues=queues, results=results)
    homes = {"fanned": tmp_path / "fanned" / "home", "local": tmp_path / "local" / "home"}
    processes = {
        "fanned": run_task(served, homes["fanned"], targets["fanned"], fanout),
        "local": run_task(served, homes["local"], targets["local"], {}),
    }
    outputs = {name: p.communicate(timeout=RUN_TIMEOUT)[0] for name, p in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, f"{name} run failed:\n{outputs[name]}"

    fanned, local = only_run(homes["fanned"]), only_run(homes["local"])
    assert fanned.status is RunStatus.SUCCEEDED and local.status is RunStatus.SUCCEEDED
    assert result_tree(fanned) == result_tree(local)

    # Each worker built one subtask, in a run of the subtask deployment, on its own home.
    built_by = {s.id: s.built_by for s in fanned.subtasks}
    assert all(b is not None for b in built_by.values()), built_by
    assert sorted(b.worker for b in built_by.values() if b) == [f"subtask-{q}" for q in queues]
    assert sorted(b.home for b in built_by.values() if b) == sorted(map(str, worker_homes))
    assert all(s.built_by is None for s in local.subtasks)
    with prefect_client(served.api_url) as client:
        deployment = client.read_deployment_by_name(SUBTASK_DEPLOYMENT)
        for subtask_id, who in built_by.items():
            assert who is not None
            flow_run = client.read_flow_run(UUID(who.flow_run_id))
            assert flow_run.deployment_id == deployment.id
            assert flow_run.state is not None and flow_run.state.type is StateType.COMPLETED
            assert flow_run.work_queue_name == queue_of[who.home]
            assert subtask_id in flow_run.name
        key = f"subtasks-{fanned.task_id}-{fanned.run_id}".lower()
        (table,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    # The run's subtasks table in the UI says who built each.
    rows: list[dict[str, str]] = json.loads(str(table.data))
    shown = {row["subtask"]: row["built by"] for row in rows}
    for subtask_id, who in built_by.items():
        assert who is not None and md_text(who.worker) in shown[md_text(subtask_id)]

    # The manager recorded what each worker's builder did, as the one-machine run did.
    for subtask in fanned.subtasks:
        step, there = fanned.step(subtask.step_id or ""), local.step(subtask.step_id or "")
        assert step is not None and there is not None
        assert [(c.command, c.exit_code) for c in step.commands] == [
            (c.command, c.exit_code) for c in there.commands
        ]
        assert step.tokens == there.tokens and step.tokens.total_tokens > 0
        assert subtask.builder_calls == 1

    # The worker's own run holds its subtask only; the manager's work folder holds none.
    for home in worker_homes:
        (worker_run,) = [m for _, m in manifests(home)]
        assert (worker_run.task_id, worker_run.run_id) == (fanned.task_id, fanned.run_id)
        assert len(worker_run.subtasks) == 1


def fanned_out_run(served: Served, tmp_path: Path) -> tuple[list[str], dict[str, str], Path, Path]:
    """The subtask queues, the manager's environment, a home and a clone of the remote."""
    remote, results = served.state_dir / REMOTE_DIR, served.state_dir / RESULTS_DIR
    queues = [worker_queue(i) for i in range(1, SUBTASK_WORKERS + 1)]
    fanout = manager_environ(remote=remote, queues=queues, results=results)
    home, target = tmp_path / "home", tmp_path / "repo"
    git(tmp_path, "clone", "--quiet", str(remote), str(target))
    return queues, fanout, home, target


def test_a_killed_manager_resumes_without_dispatching_again_and_a_crashed_build_runs_again(
    served_postgres: Served, tmp_path: Path
) -> None:
    """SIGKILL of the manager and of one subtask's flow-run process while it builds (its
    worker marks it Crashed); ``orchestrator resume`` finds both subtask runs by their
    idempotency keys, reads (or waits for) the one not killed, and builds the crashed
    subtask again as its next attempt, on the other worker's queue."""
    served = served_postgres
    run_id = "fanout-killed-1"
    _, fanout, home, target = fanned_out_run(served, tmp_path)
    manager = run_task(served, home, target, fanout, "--run-id", run_id)
    with prefect_client(served.api_url) as client:
        deployment = client.read_deployment_by_name(SUBTASK_DEPLOYMENT)
        try:
            victim = wait_for(lambda: running_subtask_run(client, deployment.id, run_id))
            kill_tree(flow_run_process(victim.id))
            kill_tree(manager.pid)
        finally:
            manager.kill()
            manager.communicate(timeout=60)
        wait_for(lambda: state_of(client, victim.id) is StateType.CRASHED or None)
        resumed = subprocess.run(
            [*CLI, "resume", f"add-word-stats/{run_id}", "--cloud-block", ""],
            env=manager_env(served, home, fanout),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        runs = {r.idempotency_key or "": r for r in subtask_runs(client, deployment.id, run_id)}

    manifest = only_run(home)
    assert manifest.status is RunStatus.SUCCEEDED
    by_id = {s.id: s for s in manifest.subtasks}
    (killed,) = [s for s in by_id if f"/{run_id}/{s}" in victim.name]
    (other,) = set(by_id) - {killed}
    first = f"build-subtask:add-word-stats/{run_id}"
    # Each key once: the killed build's next attempt is a run of its own; nothing else.
    assert sorted(runs) == sorted([f"{first}/{other}", f"{first}/{killed}", f"{first}/{killed}#2"])
    assert runs[f"{first}/{killed}"].state.type is StateType.CRASHED  # type: ignore[union-attr]
    again = runs[f"{first}/{killed}#2"]
    assert again.state is not None and again.state.type is StateType.COMPLETED
    assert again.work_queue_name != victim.work_queue_name  # the other worker
    built = by_id[killed].built_by
    assert built is not None and built.flow_run_id == str(again.id)
    assert built.worker == f"subtask-{again.work_queue_name}"
    # The subtask whose run was not killed was waited for or read: built once.
    other_built = by_id[other].built_by
    assert by_id[other].builder_calls == 1 and other_built is not None
    assert other_built.flow_run_id == str(runs[f"{first}/{other}"].id)


def test_a_killed_worker_s_subtask_is_built_again_on_the_other_worker_after_zombie_detection(
    served_postgres: Served, tmp_path: Path
) -> None:
    """SIGKILL of the whole worker building a subtask (the worker and the flow-run process
    it started, as when its machine dies) while the manager waits: nothing reports an end,
    the crash automation (its window at the 40 s minimum) sets the run Crashed, the waiting
    manager builds the subtask again on the other worker, and the run succeeds; the other
    subtask's builder asked the model once per step. The killed worker is started again
    (as serve starts it), so the stack has two subtask workers afterwards."""
    served = served_postgres
    run_id = "fanout-worker-killed-1"
    queues, fanout, home, target = fanned_out_run(served, tmp_path)
    requests = ReplayLog(served.state_dir / "replay-requests.jsonl")
    with crash_window(served, MIN_CRASH_AFTER_SECONDS), prefect_client(served.api_url) as client:
        deployment = client.read_deployment_by_name(SUBTASK_DEPLOYMENT)
        manager = run_task(served, home, target, fanout, "--run-id", run_id)
        worker: int | None = None
        tree: dict[int, int] = {}
        restarted: Starting | None = None
        try:
            victim = wait_for(lambda: running_subtask_run(client, deployment.id, run_id))
            killed = victim.name.rsplit("/", 1)[-1]
            worker = queues.index(victim.work_queue_name or "") + 1
            # Its machine hangs once the builder asked the model (mid-build: a build is
            # over before the server shows a heartbeat), and dies once the server has
            # its heartbeat (the automation knows the run was alive).
            wait_for(lambda: requests.steps(f"build-{killed}") or None)
            tree = snapshot([service_pid(served, subtask_service(worker))])
            signal_all(tree, signal.SIGSTOP)
            wait_for(lambda: heartbeats(client, victim.id) or None, timeout=60)
            assert state_of(client, victim.id) is StateType.RUNNING, "built before the kill"
            signal_all(tree, signal.SIGKILL)
            crashed = wait_for(lambda: crashed_state(client, victim.id), CRASH_DEADLINE, every=1)
            restarted = restart_subtask_worker(served, worker)  # starts while the rebuild runs
            output = manager.communicate(timeout=RUN_TIMEOUT)[0]
        finally:
            if manager.poll() is None:
                manager.kill()
                manager.communicate(timeout=60)
            signal_all(tree, signal.SIGKILL)  # never left stopped, whatever failed
            if worker is not None:  # online on its queue again, recorded for 'stop'
                (restarted or restart_subtask_worker(served, worker)).wait()
        runs = {r.idempotency_key or "": r for r in subtask_runs(client, deployment.id, run_id)}

    assert manager.returncode == 0, output
    assert crashed.message == CRASH_MESSAGE  # zombie detection, not the (dead) worker
    manifest = only_run(home)
    assert manifest.status is RunStatus.SUCCEEDED
    (other,) = {s.id for s in manifest.subtasks} - {killed}
    first = f"build-subtask:add-word-stats/{run_id}"
    assert sorted(runs) == sorted([f"{first}/{other}", f"{first}/{killed}", f"{first}/{killed}#2"])
    again = runs[f"{first}/{killed}#2"]
    assert again.state is not None and again.state.type is StateType.COMPLETED
    assert again.work_queue_name == queues[worker % len(queues)]  # the other worker
    built = {s.id: s.built_by for s in manifest.subtasks}
    rebuilt, other_built = built[killed], built[other]
    assert rebuilt is not None and rebuilt.flow_run_id == str(again.id)
    assert rebuilt.worker == f"subtask-{again.work_queue_name}"
    assert other_built is not None
    assert other_built.flow_run_id == str(runs[f"{first}/{other}"].id)
    # The replay log: the finished subtask's builder asked for each step once; the
    # killed one's first step twice (before the kill, and in its rebuild), every step.
    done_steps = requests.steps(f"build-{other}")
    assert done_steps and set(Counter(done_steps).values()) == {1}, done_steps
    killed_steps = Counter(requests.steps(f"build-{killed}"))
    assert killed_steps[0] == 2 and set(killed_steps) == set(range(len(done_steps)))


class ReplayLog:
    """The replay provider's request log from now on (earlier tests' requests left out)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, path.stat().st_size if path.exists() else 0

    def steps(self, script: str) -> list[int]:
        """The step of every request answered from ``script``, in order."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            entries = [json.loads(line) for line in log.read().splitlines() if line.strip()]
        return [e["step"] for e in entries if e.get("script") == script]


@contextlib.contextmanager
def crash_window(served: Served, seconds: int) -> Iterator[None]:
    """The crash automation's window set to ``seconds`` by the documented command, then
    back to the stack's own (serve's default)."""

    def setup(*options: str) -> None:
        done = orchestrator(
            "setup", "automations", *options, timeout=60, env={"PREFECT_API_URL": served.api_url}
        )
        assert done.returncode == 0, done.stdout + done.stderr

    setup("--crash-after", str(seconds))
    try:
        yield
    finally:
        setup("--crash-after", str(CRASH_AFTER_SECONDS))


def heartbeats(client: SyncPrefectClient, flow_run_id: UUID) -> list[object]:
    """The heartbeat events of a flow run that the server has received."""
    filter = EventFilter(
        occurred=EventOccurredFilter(since=utc_now() - timedelta(hours=1)),
        event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    return list(client.read_events(filter=filter, limit=5).events)


def crashed_state(client: SyncPrefectClient, flow_run_id: UUID) -> State | None:
    state = client.read_flow_run(flow_run_id).state
    return state if state is not None and state.type is StateType.CRASHED else None


def restart_subtask_worker(served: Served, index: int) -> Starting:
    """Subtask worker ``index`` started again as serve starts it (``wait()``: online)."""
    return spawn_subtask_worker(
        served.state_dir,
        index,
        api_url=served.api_url,
        project_dir=served.info.project_dir or Path.cwd(),
        results=served.state_dir / RESULTS_DIR,
    )


def service_pid(served: Served, name: str) -> int:
    (record,) = [s for s in read_stack(served.state_dir).services if s.name == name]
    return record.pid


def subtask_runs(client: SyncPrefectClient, deployment_id: UUID, run_id: str) -> list[FlowRun]:
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    )
    return [r for r in runs if f"/{run_id}/" in r.name]


def running_subtask_run(
    client: SyncPrefectClient, deployment_id: UUID, run_id: str
) -> FlowRun | None:
    running = [
        r
        for r in subtask_runs(client, deployment_id, run_id)
        if r.state is not None and r.state.type is StateType.RUNNING
    ]
    return running[0] if running else None


def state_of(client: SyncPrefectClient, flow_run_id: UUID) -> StateType | None:
    state = client.read_flow_run(flow_run_id).state
    return state.type if state else None


def flow_run_process(flow_run_id: UUID) -> int:
    """The PID of the process that runs the flow run (its worker's child)."""
    wanted = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()

    def find() -> int | None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if wanted in (entry / "environ").read_bytes().split(b"\0"):
                        return int(entry.name)
        return None

    return wait_for(find, timeout=30)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all it started (snapshotted first)."""
    signal_all(snapshot([pid]), signal.SIGKILL)


def signal_all(pids: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
