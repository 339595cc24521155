"""The stack's Prefect parts: server, work pool, worker, deployments and blocks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
from pydantic import SecretStr

from orchestrator.exceptions import DevStackError
from orchestrator.prefect_retries import prefect_client_environ
from orchestrator.supervisor import Supervised, clean_environ, health_url, log_tail
from schemas import CodexServerConfig

from ._parts import Starting, run_environ, spawn_part
from ._records import LOG_DIR, ServiceRecord, state_folder
from ._uvicorn import LOOPBACK, check_port_free

DEFAULT_PORT = 4200
WORK_POOL = "local"
BLOCK_NAME = "default"
CLOUD_WORKSPACE = "dev"
PREFECT_HOME_DIR = "prefect-home"
PREFECT_SERVER_TIMEOUT = 180.0
"""A cold server creates its SQLite database and runs its migrations first (~20 s here)."""
DATABASE_URL_ENV = "PREFECT_API_DATABASE_CONNECTION_URL"
WORKER_QUERY_SECONDS = 2
"""How often the worker asks for due runs (Prefect's default of 10 s feels stuck)."""
WORKER_CLIENT_SETTINGS = {"PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false"}
"""The Prefect client settings of the worker and its flow runs, under the user's own.

The worker, its flow runs and the server run this interpreter's Prefect: the version
handshake each flow-run process makes (an API call, and a TLS context of its own when
the events client makes it) can never fail, so it is skipped (Prefect's setting exists
for such worker subprocesses; docs/deployments.md, "Costs of a flow run").
"""


def _prefect(*args: str) -> list[str]:
    """The ``prefect`` command of this interpreter's environment."""
    return [sys.executable, "-m", "prefect", *args]


def prefect_environ(state_dir: Path, **settings: str) -> dict[str, str]:
    """A clean environment with ``PREFECT_HOME`` under ``state_dir`` and ``settings``."""
    env = {"PREFECT_HOME": str(state_dir / PREFECT_HOME_DIR)}
    env.update({f"PREFECT_{name.upper()}": value for name, value in settings.items()})
    return clean_environ(env)


def spawn_prefect_server(
    state_dir: Path,
    *,
    port: int = DEFAULT_PORT,
    timeout: float = PREFECT_SERVER_TIMEOUT,
    database_url: SecretStr | None = None,
) -> Starting:
    """``prefect server start`` on ``port``; ready on /api/health.

    Its database is SQLite under ``prefect-home/``, or ``database_url`` (a PostgreSQL
    URL with the asyncpg driver), given in its environment only
    (``PREFECT_API_DATABASE_CONNECTION_URL``: a password in it stays off command lines).

    Raises:
        DevStackError: the port is taken.
    """
    state_dir = state_folder(state_dir)
    check_port_free(port, service="prefect-server")
    (state_dir / PREFECT_HOME_DIR).mkdir(exist_ok=True)
    ui_url = f"http://{LOOPBACK}:{port}"
    env = prefect_environ(
        state_dir,
        server_analytics_enabled="false",
        ui_api_url=f"{ui_url}/api",  # else the UI looks for the API on port 4200
    )
    if database_url is not None:
        env[DATABASE_URL_ENV] = database_url.get_secret_value()
    command = _prefect("server", "start", "--host", LOOPBACK, "--port", str(port))
    ready = health_url(f"{ui_url}/api/health", answer=ui_url)
    return spawn_part(
        "prefect-server", command, state_dir=state_dir, env=env, ready=ready, timeout=timeout
    )


def start_prefect_server(
    state_dir: Path,
    *,
    port: int = DEFAULT_PORT,
    timeout: float = PREFECT_SERVER_TIMEOUT,
    database_url: SecretStr | None = None,
) -> ServiceRecord:
    """Start a Prefect server and wait until healthy; its record's ``url`` is the UI's."""
    starting = spawn_prefect_server(
        state_dir, port=port, timeout=timeout, database_url=database_url
    )
    return starting.wait()


def spawn_worker(
    state_dir: Path,
    *,
    api_url: str,
    home: Path,
    project_dir: Path,
    pool: str = WORK_POOL,
    timeout: float = 60,
    service: str = "worker",
    queue: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Starting:
    """``prefect worker start --pool POOL``; ready once the API lists it online.

    Its environment, which its flow runs inherit, holds :func:`run_environ` (the
    orchestrator home and the AppRole secret_id), the Prefect client's retry bound
    (:func:`orchestrator.prefect_retries.prefect_client_environ`: our defaults, or the
    ``PREFECT_CLIENT_*`` values this process has), no server version check
    (:data:`WORKER_CLIENT_SETTINGS`), the flow-run heartbeat that the crash automation
    watches (:func:`flows.heartbeats.heartbeat_environ`) and ``environ``; its working
    folder is the project (``prefect.yaml``'s pull step reads ``$PWD``). It is recorded
    as ``service`` and takes the runs of ``queue`` only, when given.
    """
    from flows.heartbeats import heartbeat_environ

    state_dir = state_folder(state_dir)
    env = prefect_environ(
        state_dir, api_url=api_url, worker_query_seconds=str(WORKER_QUERY_SECONDS)
    )
    env.update(WORKER_CLIENT_SETTINGS)
    env.update(prefect_client_environ())
    env.update(run_environ(state_dir, home=home), PWD=str(project_dir))
    env.update(heartbeat_environ())
    env.update(environ or {})
    name = f"orchestrator-{pool}-{f'{queue}-' if queue else ''}{os.getpid()}"
    command = _prefect("worker", "start", "--pool", pool, "--type", "process", "--name", name)
    command += ["--work-queue", queue] if queue else []

    def online(process: Supervised) -> str | None:
        return _worker_online(api_url, pool, name)

    return spawn_part(
        service,
        command,
        state_dir=state_dir,
        env=env,
        ready=online,
        timeout=timeout,
        cwd=project_dir,
    )


def _worker_online(api_url: str, pool: str, name: str) -> str | None:
    try:
        response = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json={}, timeout=2)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    online = any(w["name"] == name and w["status"] == "ONLINE" for w in response.json())
    return name if online else None


def create_work_pool(api_url: str, *, name: str = WORK_POOL, max_runs: int | None = None) -> None:
    """Create (or overwrite) the process work pool ``name``.

    Args:
        api_url: The Prefect API.
        name: The pool's name.
        max_runs: The pool's concurrency limit (admission control: runs over it wait
            Scheduled until a slot frees); ``None``: no limit.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    pool = WorkPoolCreate(
        name=name, type="process", base_job_template=template, concurrency_limit=max_runs
    )
    with prefect_api(api_url), get_client(sync_client=True) as client:
        client.create_work_pool(pool, overwrite=True)


def create_automations(api_url: str, *, notify_block: str | None = None) -> None:
    """The server's automations (as ``orchestrator setup automations`` creates them): the
    crash automation, and with ``notify_block`` (``<block type>/<name>``) the two that
    notify people (:mod:`flows.notifications`)."""
    from flows.approvals import run_with_client
    from flows.heartbeats import ensure_crash_automation
    from flows.notifications import ensure_notify_automations

    with prefect_api(api_url):
        run_with_client(ensure_crash_automation)
        if notify_block:
            run_with_client(ensure_notify_automations, block=notify_block)


def deploy(api_url: str, *, state_dir: Path, project_dir: Path, timeout: float = 180) -> list[str]:
    """``prefect --no-prompt deploy --all`` in ``project_dir``; the deployments' names.

    Raises:
        DevStackError: the deploy failed (its output is in ``logs/deploy.log``).
    """
    state_dir = state_folder(state_dir)
    env = prefect_environ(state_dir, api_url=api_url)
    env["PWD"] = str(project_dir)
    log = state_dir / LOG_DIR / "deploy.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        done = subprocess.run(
            _prefect("--no-prompt", "deploy", "--all"),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=project_dir,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        raise DevStackError(
            f"prefect deploy failed; {log} ends:\n{log_tail(log)}", service="deploy"
        )
    return deployment_names(api_url)


def deployment_names(api_url: str) -> list[str]:
    """Every deployment on the server, as ``flow/deployment``."""
    response = httpx.post(f"{api_url}/deployments/filter", json={}, timeout=10)
    response.raise_for_status()
    flows = httpx.post(f"{api_url}/flows/filter", json={}, timeout=10)
    flows.raise_for_status()
    flow_names = {f["id"]: f["name"] for f in flows.json()}
    return sorted(f"{flow_names[d['flow_id']]}/{d['name']}" for d in response.json())


def nightly_schedule(api_url: str, *, deployment: str = "nightly/nightly") -> str:
    """The nightly deployment's schedules as text, read back from the API."""
    response = httpx.get(f"{api_url}/deployments/name/{deployment}", timeout=10)
    if response.status_code != 200:
        return ""
    schedules = [s["schedule"] for s in response.json().get("schedules", [])]
    return ", ".join(
        f"cron {s['cron']} ({s.get('timezone') or 'UTC'})" for s in schedules if "cron" in s
    )


def save_blocks(
    *,
    vault_address: str,
    role_id: str,
    codex: CodexServerConfig,
    cloud_url: str,
    workspace_id: str = CLOUD_WORKSPACE,
    name: str = BLOCK_NAME,
    api_url: str | None = None,
) -> None:
    """Save the Vault, Codex server and Codex Cloud blocks as ``name``.

    Against ``api_url``, or the Prefect API this process is configured for.
    """
    from blocks.cloud import CodexCloudEndpoint
    from blocks.codex import CodexServerSettings
    from blocks.vault import VaultCredentials

    vault = VaultCredentials(address=vault_address, role_id=SecretStr(role_id))
    cloud = CodexCloudEndpoint(base_url=cloud_url, workspace_id=workspace_id)
    with prefect_api(api_url):
        vault.save(name, overwrite=True)
        CodexServerSettings.from_config(codex).save(name, overwrite=True)
        cloud.save(name, overwrite=True)


NOTIFY_BLOCK_NAME = "orchestrator-dev"


def save_notify_block(url: str, *, api_url: str | None = None) -> str:
    """Save a Custom Webhook notification block that POSTs each notification to ``url``
    as JSON (``subject``, ``body``, and ``text``: both, for chat webhooks that take
    one field); its ``<block type>/<name>``.
    """
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="Codex Orchestrator (dev stack)",
        url=url,
        json_data={"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n\n{{body}}"},
    )
    with prefect_api(api_url):
        block.save(NOTIFY_BLOCK_NAME, overwrite=True)
    return f"{block.get_block_type_slug()}/{NOTIFY_BLOCK_NAME}"


@contextlib.contextmanager
def prefect_api(api_url: str | None) -> Iterator[None]:
    """This process's Prefect client settings pointed at ``api_url`` (as they are if None).

    On the way out, the logs and events still queued for that API are sent: Prefect
    would otherwise try at interpreter exit, after the server may be gone, and hold the
    exit for a minute of retries.
    """
    if api_url is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        try:
            yield
        finally:
            drain_prefect_clients()


def drain_prefect_clients(timeout: float = 10.0) -> None:
    """Send what Prefect's background log and event workers hold, and stop them."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)
