"""Subtask workers on one machine: the many-machines set-up of docs/deployments.md, local.

``orchestrator serve --workers N`` starts N process workers on the ``subtasks`` pool,
each on a queue of its own (``worker-1`` ...) and with an ORCHESTRATOR_HOME of its own
(``workers/<i>/home``), a bare git remote of the sample repository (``remote.git``)
and one result folder (``results/``, Prefect's ``PREFECT_LOCAL_STORAGE_PATH``), and
points the main worker's runs at them (:func:`manager_environ`). They share nothing
else, as workers on other machines would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from orchestrator.gitops import git

from ._parts import Starting
from ._prefect import prefect_api, spawn_worker

SUBTASK_POOL = "subtasks"
SUBTASK_DEPLOYMENT = "build-subtask/build-subtask"
REMOTE_DIR = "remote.git"
RESULTS_DIR = "results"
WORKERS_DIR = "workers"


def worker_queue(index: int) -> str:
    """The queue of subtask worker ``index`` (from 1)."""
    return f"worker-{index}"


def subtask_service(index: int) -> str:
    """The service name (``stack.json``) and worker name (``built_by``) of subtask worker
    ``index``."""
    return f"subtask-{worker_queue(index)}"


def prepare_remote(repo: Path, dest: Path) -> Path:
    """A bare clone of ``repo`` at ``dest`` (kept when there): the remote workers share."""
    if not (dest / "HEAD").is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        git(dest.parent, "clone", "--quiet", "--bare", str(repo), str(dest), writes=dest)
    return dest


def manager_environ(*, remote: Path | str, queues: Sequence[str], results: Path) -> dict[str, str]:
    """What a manager needs to fan its subtasks out to the subtask workers."""
    return {
        "ORCHESTRATOR_SUBTASK_DEPLOYMENT": SUBTASK_DEPLOYMENT,
        "ORCHESTRATOR_SUBTASK_REMOTE": str(remote),
        "ORCHESTRATOR_SUBTASK_QUEUES": json.dumps(list(queues)),
        "PREFECT_LOCAL_STORAGE_PATH": str(results),
    }


def create_work_queues(api_url: str, names: Sequence[str], *, pool: str = SUBTASK_POOL) -> None:
    """The pool's queues ``names`` (kept when they exist)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists

    with prefect_api(api_url), get_client(sync_client=True) as client:
        for name in names:
            try:
                client.create_work_queue(name, work_pool_name=pool)
            except ObjectAlreadyExists:
                pass


def spawn_subtask_workers(
    state_dir: Path,
    *,
    api_url: str,
    project_dir: Path,
    count: int,
    results: Path,
    homes: Sequence[Path] | None = None,
) -> list[Starting]:
    """``count`` workers on the subtask pool (:func:`spawn_subtask_worker` ``1..count``),
    worker ``i`` with the home ``homes[i-1]`` when given."""
    create_work_queues(api_url, [worker_queue(i) for i in range(1, count + 1)])
    return [
        spawn_subtask_worker(
            state_dir,
            index,
            api_url=api_url,
            project_dir=project_dir,
            results=results,
            home=homes[index - 1] if homes else None,
        )
        for index in range(1, count + 1)
    ]


def spawn_subtask_worker(
    state_dir: Path,
    index: int,
    *,
    api_url: str,
    project_dir: Path,
    results: Path,
    home: Path | None = None,
) -> Starting:
    """Subtask worker ``index`` (from 1): on queue ``worker-<index>`` (which must exist),
    recorded as ``subtask-worker-<index>`` (replacing a dead one of that name), with the
    home ``home`` (default ``workers/<index>/home`` under ``state_dir``)."""
    queue = worker_queue(index)
    home = home or state_dir / WORKERS_DIR / str(index) / "home"
    home.mkdir(parents=True, exist_ok=True)
    service = subtask_service(index)
    return spawn_worker(
        state_dir,
        api_url=api_url,
        home=home,
        project_dir=project_dir,
        pool=SUBTASK_POOL,
        service=service,
        queue=queue,
        environ={"PREFECT_LOCAL_STORAGE_PATH": str(results), "ORCHESTRATOR_WORKER_NAME": service},
    )
