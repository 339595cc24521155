"""The dev stack: every local server a pipeline run needs, started and stopped by PID.

``make serve`` (``orchestrator serve``) starts all of it detached and returns;
``make stop`` (``orchestrator stop``) stops exactly the processes it recorded. The
parts compose, so a demo or a test can start only what it needs::

    with DevStack(state_dir=Path(".serve"), home=Path.cwd()) as stack:
        info = stack.info          # URLs, pids, the sample repository
        ...                        # trigger deployments; the worker runs them

    # or piece by piece, e.g. against the Prefect API this process already uses:
    vault = start_vault(state_dir)
    runs_api = start_runs_api(state_dir, token=read_cloud_token(state_dir, vault))
    replay = start_replay(state_dir)
    save_blocks(
        vault_address=vault.address,
        role_id=vault.role_ids["dev"],
        codex=replay_codex_config(replay),
        cloud_url=runs_api.url,
    )
    os.environ.update(run_environ(state_dir, home=home))   # secret_id: memory only
    repo = prepare_sample_repo(home / SAMPLE_REPO)
    ...
    stop_stack(state_dir)

What one stack starts, each in a session of its own through the process supervisor
(:mod:`orchestrator.supervisor`), recorded in ``stack.json``: an OpenBao dev server
(:mod:`devstack.vault`, detached), the reference Runs API server, the replay model
provider (unless a real model is given), a Prefect server (on SQLite, on a PostgreSQL
cluster of its own started first (:mod:`devstack._postgres`), or on a database URL you
give) and a process worker; and it creates the work pool (with its concurrency limit,
:mod:`devstack._admission`) and the automation that sets Crashed the flow
runs whose process died (:mod:`flows.heartbeats`), and with ``notify_webhook`` the two
that notify people (:mod:`flows.notifications`, through a Custom Webhook block), saves
the three blocks (document name ``default``), deploys ``prefect.yaml`` and prepares
the sample git repository.

The state folder (mode 0700; 0710 for the ``postgres`` group when the cluster runs as it)::

    stack.json              each process: name, pid, start time, url, log; and the stack's info
    logs/<name>.log         each process's output (and deploy.log)
    prefect-home/           PREFECT_HOME of the server, the deploy and the worker (SQLite)
    postgres/               the PostgreSQL cluster, with ``database="postgres"``
    runs-api.sqlite3        the reference Runs API's database
    replay-requests.jsonl   every request the replay provider answered
    vault.json, vault.pid, dev-vault.log, vault-home/   the dev Vault (devstack.vault)
    approle-<env>.env       the env's AppRole secret_id, mode 0600 (removed when Vault stops)

Secrets: the dev Vault generates the demo secrets (or takes ``ORCHESTRATOR_DEV_VAULT_<KEY>``
from the environment). The Runs API's bearer token is read back from Vault with the dev
AppRole, as a run reads it, and handed to the Runs API server in its environment
(``ORCHESTRATOR_CLOUD_TOKEN``), so the two agree by construction. The worker gets the
AppRole secret_id in its environment (``ORCHESTRATOR_VAULT_SECRET_ID``) from the 0600
file; its flow runs inherit it. Every process gets a clean environment (a few harmless
variables of ours plus what it needs); nothing secret is on a command line, in
``stack.json``, in a block or in a log.

Stopping: every recorded process and everything it started (its process tree and its
session, snapshotted before the first signal, so flow runs that a worker started in
sessions of their own go too), the database last (once its clients are gone), gets
SIGTERM, a bounded wait, then SIGKILL. A PID is signalled only while its start time
matches the recorded one, so a recycled PID is never hit. A Prefect worker ignores
SIGTERM for longer than 18 s; it gets the SIGKILL.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from orchestrator.exceptions import DevStackError
from orchestrator.supervisor import Stoppable, reap, snapshot, terminate

from ._database import SQLITE, Database
from ._fanout import (
    REMOTE_DIR,
    RESULTS_DIR,
    SUBTASK_POOL,
    manager_environ,
    prepare_remote,
    spawn_subtask_workers,
    worker_queue,
)
from ._forkserver import forkserver_environ, spawn_forkserver
from ._parts import (
    ENV,
    RealModel,
    Starting,
    read_cloud_token,
    replay_codex_config,
    run_environ,
    spawn_replay,
    spawn_runs_api,
    start_vault,
)
from ._postgres import SERVICE as DATABASE_SERVICE
from ._postgres import spawn_postgres
from ._prefect import (
    CLOUD_WORKSPACE,
    DEFAULT_PORT,
    WORK_POOL,
    create_automations,
    create_work_pool,
    deploy,
    nightly_schedule,
    prefect_environ,
    save_blocks,
    save_notify_block,
    spawn_prefect_server,
    spawn_worker,
)
from ._records import ServiceRecord, StackInfo, forget_stack, read_stack, state_folder, update_stack
from .samples import SAMPLE_REPO, fixture_set, prepare_sample_repo
from .vault import read_state, stop_background

PROJECT_DIR_ENV = "ORCHESTRATOR_PROJECT_DIR"
"""The project folder to deploy (``prefect.yaml``), when it is not the one holding ``flows``."""

Part = Literal["prefect", "worker", "deploy"]


def find_project_dir(given: Path | None = None) -> Path:
    """The project folder whose ``prefect.yaml`` is deployed and where the worker runs.

    ``given``, else ``$ORCHESTRATOR_PROJECT_DIR``, else the folder holding the ``flows``
    package this interpreter imports (prefect.yaml's entrypoints are ``flows/*.py``
    relative to it: a checkout, or an editable install of one).

    Raises:
        DevStackError: that folder has no ``prefect.yaml`` (e.g. a wheel install).
    """
    folder = given or _env_path(PROJECT_DIR_ENV) or _flows_parent()
    if folder is None or not (folder / "prefect.yaml").is_file():
        raise DevStackError(
            f"no prefect.yaml in {folder or 'the folder of the flows package'}: give the "
            f"project folder with --project-dir or {PROJECT_DIR_ENV}",
            service="deploy",
        )
    return folder.resolve()


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _flows_parent() -> Path | None:
    spec = importlib.util.find_spec("flows")
    return Path(spec.origin).parent.parent if spec and spec.origin else None


def stop_stack(state_dir: Path, *, timeout: float = 5.0) -> list[ServiceRecord]:
    """Stop every process recorded under ``state_dir`` and all they started; forget them.

    Returns the records of the processes that were still running.

    Raises:
        ProcessError: a process survived SIGKILL.
    """
    state_dir = state_dir.resolve()
    if not state_dir.is_dir():
        return []
    services = read_stack(state_dir).services
    running = [s for s in services if s.running]
    # The database goes last, once its clients are gone: then it shuts down at once.
    clients = [s for s in running if s.name != DATABASE_SERVICE]
    databases = [s for s in running if s.name == DATABASE_SERVICE]
    doomed = snapshot(s.pid for s in clients)
    if read_state(state_dir) is not None:
        stop_background(state_dir, timeout=timeout)  # the dev Vault stops itself cleanly
    terminate(doomed, leaders=[s.pid for s in clients if s.name != "vault"], timeout=timeout)
    reap(doomed)
    last = snapshot(s.pid for s in databases)
    terminate(last, leaders=[s.pid for s in databases], timeout=timeout)
    reap(last)
    forget_stack(state_dir)
    return clients + databases


def stack_processes(state_dir: Path) -> dict[int, int]:
    """Every live process of the stack recorded under ``state_dir``: pid -> start ticks.

    The recorded processes, their descendants and the members of their sessions.
    """
    return snapshot(s.pid for s in read_stack(state_dir.resolve()).services)


@dataclass
class DevStack(Stoppable):
    """Every part, started together; a context manager that stops what it started.

    Attributes:
        state_dir: The state folder (see the module docstring).
        home: The orchestrator home of the worker's runs (``.runs/``, ``out/``, ``work/``).
        port: The Prefect server's port.
        model: A real model instead of the replay provider.
        fixtures: The replay fixture set (default: the sample set).
        parts: Which of the Prefect server, the deploy and the worker to start; without
            ``prefect`` the blocks go to the API this process is configured for.
        pool: The work pool's name.
        project_dir: The folder whose ``prefect.yaml`` is deployed (:func:`find_project_dir`).
        database: The Prefect server's database (SQLite, our PostgreSQL cluster, a URL).
        max_runs: The work pool's concurrency limit (admission control); ``None``: none.
        notify_webhook: Where the notification automations POST (a Custom Webhook block
            ``custom-webhook/orchestrator-dev``); None: no notifications.
        workers: Subtask workers to start (:mod:`devstack._fanout`): each with its own
            home and queue on the ``subtasks`` pool; parallel runs then build their
            subtasks there. 0: none (subtasks are built in the run's own process).
    """

    state_dir: Path
    home: Path
    port: int = DEFAULT_PORT
    model: RealModel | None = None
    fixtures: Path | None = None
    parts: frozenset[Part] = frozenset({"prefect", "deploy", "worker"})
    pool: str = WORK_POOL
    project_dir: Path | None = None
    database: Database = SQLITE
    max_runs: int | None = None
    notify_webhook: str | None = None
    workers: int = 0
    info: StackInfo | None = field(default=None, init=False)
    _shown_database: str = field(default="sqlite", init=False, repr=False)

    def start(self) -> StackInfo:
        """Start every part; on any failure stop what was started and raise.

        Raises:
            DevStackError: no project folder to deploy, or a stack recorded here still runs.
            ProcessError: a part did not start.
            CredentialError: the dev Vault did not start.
        """
        self.state_dir = state_folder(self.state_dir)
        self.home = self.home.resolve()
        if self.parts & {"deploy", "worker"}:
            self.project_dir = find_project_dir(self.project_dir)
        self._check_not_running()
        stop_stack(self.state_dir)  # leftovers of a stack that died
        started = time.monotonic()
        try:
            self.info = self._start_all(started)
        except BaseException:
            self.stop()
            raise
        update_stack(self.state_dir, lambda state: setattr(state, "info", self.info))
        return self.info

    def stop(self) -> list[ServiceRecord]:
        """Stop every process recorded in the state folder (see :func:`stop_stack`)."""
        return stop_stack(self.state_dir)

    def run_environ(self) -> dict[str, str]:
        """Variables for a process that runs flows against this stack (see :func:`run_environ`)."""
        return run_environ(self.state_dir, home=self.home)

    def _enter(self) -> None:
        self.start()

    def _check_not_running(self) -> None:
        running = [s.name for s in read_stack(self.state_dir).services if s.running]
        if running:
            raise DevStackError(
                f"a dev stack recorded in {self.state_dir} still runs ({', '.join(running)}); "
                "stop it first ('make stop' or 'orchestrator stop')",
                service=running[0],
            )

    def _start_all(self, started: float) -> StackInfo:
        state_dir = self.state_dir
        server = None
        if "prefect" in self.parts:
            server = spawn_prefect_server(
                state_dir, port=self.port, database_url=self._start_database()
            )
        fixtures = None if self.model else (self.fixtures or fixture_set())
        replay = spawn_replay(state_dir, fixtures=fixtures) if fixtures else None
        vault = start_vault(state_dir)
        runs_api = spawn_runs_api(state_dir, token=read_cloud_token(state_dir, vault))
        repo = prepare_sample_repo(self.home / SAMPLE_REPO)
        codex = self.model.codex_config() if self.model else replay_codex_config(replay)
        cloud_url = runs_api.wait().url
        ui_url = server.wait().url if server else ""
        api_url = f"{ui_url}/api" if ui_url else None
        save_blocks(
            vault_address=vault.address,
            role_id=vault.role_ids[ENV],
            codex=codex,
            cloud_url=cloud_url,
            api_url=api_url,
        )
        deployments, pool = self._start_workload(api_url, repo)
        return StackInfo(
            state_dir=state_dir,
            home=self.home,
            project_dir=self.project_dir,
            ui_url=ui_url,
            api_url=api_url or "",
            work_pool=pool,
            max_runs=self.max_runs if pool else None,
            database=self._shown_database,
            deployments=deployments,
            nightly_schedule=nightly_schedule(api_url) if deployments and api_url else "",
            vault_address=vault.address,
            env=ENV,
            runs_api_url=cloud_url,
            cloud_workspace=CLOUD_WORKSPACE,
            model_url=codex.provider.base_url,
            model=codex.model,
            replay_fixtures=fixtures,
            sample_repo=repo,
            subtask_workers=self.workers if pool else 0,
            started_in_seconds=round(time.monotonic() - started, 1),
        )

    def _start_database(self) -> SecretStr | None:
        """The Prefect server's database URL (``None``: SQLite); our cluster started first."""
        self._shown_database = self.database.shown
        if self.database.kind != "postgres":
            return self.database.url
        postgres = spawn_postgres(self.state_dir)
        postgres.starting.wait()
        self._shown_database = postgres.public_url
        return postgres.url

    def _start_workload(self, api_url: str | None, repo: Path) -> tuple[list[str], str]:
        """Work pools, automations, workers and deployments (the workers start while the
        deploy runs)."""
        if api_url is None:
            return [], ""
        create_work_pool(api_url, name=self.pool, max_runs=self.max_runs)
        create_work_pool(api_url, name=SUBTASK_POOL)  # prefect.yaml's build-subtask pool
        webhook = self.notify_webhook
        notify = save_notify_block(webhook, api_url=api_url) if webhook else None
        create_automations(api_url, notify_block=notify)
        project_dir = self.project_dir or Path.cwd()  # set by start() when these parts run
        workers = []
        if "worker" in self.parts:
            workers = self._spawn_workers(api_url, project_dir, repo)
        deployments: list[str] = []
        if "deploy" in self.parts:
            deployments = deploy(api_url, state_dir=self.state_dir, project_dir=project_dir)
        for worker in workers:
            worker.wait()
        return deployments, self.pool

    def _spawn_workers(self, api_url: str, project_dir: Path, repo: Path) -> list[Starting]:
        """The fork server, the main worker (whose flow runs it forks) and, with
        ``workers``, the subtask workers it fans out to."""
        fanout: dict[str, str] = {}
        subtask_workers: list[Starting] = []
        if self.workers:
            results = self.state_dir / RESULTS_DIR
            results.mkdir(exist_ok=True)
            remote = prepare_remote(repo, self.state_dir / REMOTE_DIR)
            queues = [worker_queue(i) for i in range(1, self.workers + 1)]
            fanout = manager_environ(remote=remote, queues=queues, results=results)
            subtask_workers = spawn_subtask_workers(
                self.state_dir,
                api_url=api_url,
                project_dir=project_dir,
                count=self.workers,
                results=results,
            )
        forkserver = spawn_forkserver(
            self.state_dir,
            env=prefect_environ(self.state_dir, api_url=api_url),
            project_dir=project_dir,
        )
        main = spawn_worker(
            self.state_dir,
            api_url=api_url,
            home=self.home,
            project_dir=project_dir,
            pool=self.pool,
            environ={**fanout, **forkserver_environ(self.state_dir)},
        )
        return [forkserver, main, *subtask_workers]
