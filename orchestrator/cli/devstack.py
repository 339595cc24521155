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

What one stack starts, each in its own session, recorded in ``stack.json``: an OpenBao
dev server (:mod:`orchestrator.dev_vault`, detached), the reference Runs API server, the
replay model provider (unless a real model is given), a Prefect server (SQLite) and a
process worker; and it creates the work pool, saves the three blocks (document name
``default``), deploys ``prefect.yaml`` and prepares the sample git repository.

The state folder (mode 0700)::

    stack.json              each process: name, pid, start time, url, log; and the stack's info
    logs/<name>.log         each process's output (and deploy.log)
    prefect-home/           PREFECT_HOME of the server, the deploy and the worker (SQLite)
    runs-api.sqlite3        the reference Runs API's database
    replay-requests.jsonl   every request the replay provider answered
    vault.json, vault.pid, dev-vault.log, vault-home/   the dev Vault (orchestrator.dev_vault)
    approle-<env>.env       the env's AppRole secret_id, mode 0600 (removed when Vault stops)

Secrets: the dev Vault generates the demo secrets (or takes ``ORCHESTRATOR_DEV_VAULT_<KEY>``
from the environment). The Runs API's bearer token is read back from Vault with the dev
AppRole, as a run reads it, and handed to the Runs API server in its environment
(``ORCHESTRATOR_CLOUD_TOKEN``), so the two agree by construction. The worker gets the
AppRole secret_id in its environment (``ORCHESTRATOR_VAULT_SECRET_ID``) from the 0600
file; its flow runs inherit it. Nothing secret is on a command line, in ``stack.json``,
in a block or in a log.

Stopping: every recorded process and everything it started (its process tree and its
session, snapshotted before the first signal, so flow runs that a worker started in
sessions of their own go too) gets SIGTERM, a bounded wait, then SIGKILL. A PID is
signalled only while its start time matches the recorded one, so a recycled PID is
never hit. A Prefect worker ignores SIGTERM for longer than 18 s; it gets the SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orchestrator.credentials import (
    CLOUD_TOKEN,
    DEFAULT_SECRET_ID_ENV,
    OPENAI_API_KEY,
    VaultSettings,
    open_broker,
)
from orchestrator.dev_vault import (
    DevVaultState,
    read_state,
    secret_id_file,
    start_background,
    stop_background,
)
from orchestrator.exceptions import OrchestratorError
from orchestrator.gitops import check_target, git
from orchestrator.processes import descendants, is_same_process, process_table, start_ticks
from orchestrator.redaction import get_redactor
from orchestrator.runs_api_server import DEFAULT_TOKEN_ENV, READY_PREFIX
from schemas import CodexServerConfig, ModelProvider

__all__ = [
    "BLOCK_NAME",
    "CLOUD_WORKSPACE",
    "DEFAULT_PORT",
    "PROJECT_DIR",
    "SAMPLE_FIXTURES",
    "SAMPLE_REPO",
    "WORK_POOL",
    "DevStack",
    "DevStackError",
    "RealModel",
    "ServiceRecord",
    "StackInfo",
    "StackState",
    "Starting",
    "base_environ",
    "create_work_pool",
    "deploy",
    "deployment_names",
    "free_port",
    "model_key_warning",
    "nightly_schedule",
    "prepare_sample_repo",
    "read_cloud_token",
    "read_secret_id",
    "read_stack",
    "replay_codex_config",
    "run_environ",
    "save_blocks",
    "spawn",
    "spawn_prefect_server",
    "spawn_replay",
    "spawn_runs_api",
    "spawn_worker",
    "stack_processes",
    "start_prefect_server",
    "start_replay",
    "start_runs_api",
    "start_vault",
    "still_running",
    "stop_stack",
    "terminate",
    "vault_settings",
]

PROJECT_DIR = Path(__file__).resolve().parents[2]
SAMPLE_REPO_SOURCE = PROJECT_DIR / "examples" / "sample-repo"
SAMPLE_FIXTURES = PROJECT_DIR / "examples" / "replay" / "sample"
SAMPLE_REPO = Path("work") / "sample-repo"
"""Where the sample repository is prepared, relative to the orchestrator home."""

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 4200
WORK_POOL = "local"
BLOCK_NAME = "default"
CLOUD_WORKSPACE = "dev"
ENV = "dev"
STACK_FILE = "stack.json"
LOG_DIR = "logs"
PREFECT_HOME_DIR = "prefect-home"
WORKER_QUERY_SECONDS = 2
"""How often the worker asks for due runs (Prefect's default of 10 s feels stuck)."""

_REPLAY_READY = re.compile(r"replay provider listening on (http://\S+)")
_RUNS_API_READY = re.compile(re.escape(READY_PREFIX) + r"(http://\S+)")
_SECRET_ENV = ("VAULT_TOKEN", "BAO_TOKEN", DEFAULT_SECRET_ID_ENV, DEFAULT_TOKEN_ENV)
_POLL = 0.1


class DevStackError(OrchestratorError):
    """A part of the dev stack did not start (or the stack is already running)."""

    def __init__(self, message: str, *, service: str) -> None:
        super().__init__(message)
        self.service = service


# --- records ------------------------------------------------------------------------------


class ServiceRecord(BaseModel):
    """One process the stack started (no secret in it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pid: int
    start_ticks: int = Field(description="Its start time, so a recycled PID is never hit.")
    url: str = ""
    log: Path

    @property
    def running(self) -> bool:
        return is_same_process(self.pid, self.start_ticks)


class StackInfo(BaseModel):
    """What a started stack offers, as ``orchestrator serve`` prints it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: Path
    home: Path
    project_dir: Path
    ui_url: str = ""
    api_url: str = ""
    work_pool: str = ""
    deployments: list[str] = Field(default_factory=list)
    nightly_schedule: str = ""
    vault_address: str
    env: str
    runs_api_url: str
    cloud_workspace: str
    model_url: str
    model: str
    replay_fixtures: Path | None
    sample_repo: Path
    started_in_seconds: float


class StackState(BaseModel):
    """The content of ``stack.json``."""

    model_config = ConfigDict(extra="forbid")

    services: list[ServiceRecord] = Field(default_factory=list)
    info: StackInfo | None = None


_state_lock = threading.Lock()


def read_stack(state_dir: Path) -> StackState:
    """What ``stack.json`` under ``state_dir`` records (empty when there is none)."""
    try:
        text = (state_dir / STACK_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return StackState()
    return StackState.model_validate_json(text)


def _update_stack(state_dir: Path, change: Callable[[StackState], None]) -> None:
    with _state_lock:
        state = read_stack(state_dir)
        change(state)
        temp = state_dir / f".{STACK_FILE}.tmp"
        temp.write_text(state.model_dump_json(indent=2) + "\n", encoding="utf-8")
        temp.replace(state_dir / STACK_FILE)


def _record(state_dir: Path, record: ServiceRecord) -> None:
    def upsert(state: StackState) -> None:
        state.services = [s for s in state.services if s.name != record.name] + [record]

    _update_stack(state_dir, upsert)


# --- starting processes --------------------------------------------------------------------


@dataclass
class Starting:
    """A process that is spawned and recorded, and not yet known to be ready."""

    record: ServiceRecord
    ready: Callable[[], str | None]
    """Returns the service's URL once it is ready, else ``None``."""
    state_dir: Path
    timeout: float
    exit_code: int | None = None

    def wait(self) -> ServiceRecord:
        """Wait until it is ready; the record, now with its URL.

        Raises:
            DevStackError: it exited, or was not ready within its timeout.
        """
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            url = self.ready()
            if url is not None:
                self.record = self.record.model_copy(update={"url": url})
                _record(self.state_dir, self.record)
                return self.record
            if self._exited():
                raise self._failed(f"exited with code {self.exit_code}")
            time.sleep(_POLL)
        raise self._failed(f"was not ready within {self.timeout:.0f} s")

    def _exited(self) -> bool:
        if self.exit_code is None:
            try:
                pid, status = os.waitpid(self.record.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already, or not our child
                pid, status = (0, 0) if self.record.running else (self.record.pid, 0)
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
        return self.exit_code is not None

    def _failed(self, what: str) -> DevStackError:
        name = self.record.name
        tail = _log_tail(self.record.log)
        return DevStackError(
            f"{name} {what}; its log {self.record.log} ends:\n{tail}", service=name
        )


_IN_FOLDER = 'cd "$0" && exec "$@"'
"""Runs a command in a folder (``posix_spawn`` has no ``cwd``); ``exec`` keeps the PID."""


def spawn(
    name: str,
    command: Sequence[str],
    *,
    state_dir: Path,
    env: Mapping[str, str],
    ready: Callable[[int], str | None],
    timeout: float,
    cwd: Path = PROJECT_DIR,
) -> Starting:
    """Start ``command`` in a session of its own, output to ``logs/<name>.log``; record it.

    The process is started by PID (``posix_spawn``), not as a ``Popen`` object: it is
    meant to outlive this process, and is stopped by PID (:func:`stop_stack`).
    ``ready`` gets the log's size before the start (read only what follows) and returns
    the service's URL once it is ready.
    """
    log = state_dir / LOG_DIR / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    argv = ["/bin/sh", "-c", _IN_FOLDER, str(cwd), *command]
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, out, 2),
            ],
            setsid=True,  # its own session; Ctrl-C in a terminal does not reach it
        )
    finally:
        os.close(out)
    record = ServiceRecord(name=name, pid=pid, start_ticks=start_ticks(pid), log=log)
    _record(state_dir, record)
    return Starting(record, lambda: ready(offset), state_dir, timeout)


def base_environ(*, prefect_home: Path | None = None) -> dict[str, str]:
    """This process's environment without Prefect settings or Vault credentials."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k not in _SECRET_ENV
    }
    env["PWD"] = str(PROJECT_DIR)  # prefect.yaml's pull step reads it
    if prefect_home is not None:
        env["PREFECT_HOME"] = str(prefect_home)
    return env


def _log_ready(log: Path, pattern: re.Pattern[str]) -> Callable[[int], str | None]:
    def ready(offset: int) -> str | None:
        try:
            with open(log, encoding="utf-8", errors="replace") as file:
                file.seek(offset)
                match = pattern.search(file.read())
        except FileNotFoundError:
            return None
        return match.group(1) if match else None

    return ready


def _http_ready(url: str, *, answer: str) -> Callable[[int], str | None]:
    def ready(offset: int) -> str | None:
        try:
            response = httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return None
        return answer if response.status_code == 200 else None

    return ready


def _prefect(*args: str) -> list[str]:
    """The ``prefect`` command of this interpreter's environment."""
    return [sys.executable, "-m", "prefect", *args]


def _state_dir(state_dir: Path) -> Path:
    state_dir = state_dir.resolve()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return state_dir


# --- the parts ------------------------------------------------------------------------------


def spawn_prefect_server(
    state_dir: Path, *, port: int = DEFAULT_PORT, timeout: float = 60
) -> Starting:
    """``prefect server start`` on ``port`` (SQLite under ``prefect-home/``).

    Raises:
        DevStackError: the port is taken.
    """
    state_dir = _state_dir(state_dir)
    _check_port_free(port)
    home = state_dir / PREFECT_HOME_DIR
    home.mkdir(exist_ok=True)
    api_url = f"http://{LOOPBACK}:{port}/api"
    env = base_environ(prefect_home=home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_UI_API_URL"] = api_url  # else the UI looks for the API on port 4200
    command = _prefect("server", "start", "--host", LOOPBACK, "--port", str(port))
    return spawn(
        "prefect-server",
        command,
        state_dir=state_dir,
        env=env,
        ready=_http_ready(f"{api_url}/health", answer=f"http://{LOOPBACK}:{port}"),
        timeout=timeout,
    )


def start_prefect_server(
    state_dir: Path, *, port: int = DEFAULT_PORT, timeout: float = 60
) -> ServiceRecord:
    """Start a Prefect server and wait until healthy; its record's ``url`` is the UI's."""
    return spawn_prefect_server(state_dir, port=port, timeout=timeout).wait()


def spawn_replay(
    state_dir: Path, *, fixtures: Path = SAMPLE_FIXTURES, port: int = 0, timeout: float = 30
) -> Starting:
    """The replay model provider serving ``fixtures``; requests logged to a JSON-lines file."""
    state_dir = _state_dir(state_dir)
    command = [sys.executable, "-m", "agents.replay", "--fixtures", str(fixtures.resolve())]
    command += ["--host", LOOPBACK, "--port", str(port)]
    command += ["--request-log", str(state_dir / "replay-requests.jsonl")]
    log = state_dir / LOG_DIR / "replay.log"
    return spawn(
        "replay",
        command,
        state_dir=state_dir,
        env=base_environ(),
        ready=_log_ready(log, _REPLAY_READY),
        timeout=timeout,
    )


def start_replay(
    state_dir: Path, *, fixtures: Path = SAMPLE_FIXTURES, port: int = 0, timeout: float = 30
) -> ServiceRecord:
    """Start the replay provider; its record's ``url`` is codex's ``base_url`` (``.../v1``)."""
    return spawn_replay(state_dir, fixtures=fixtures, port=port, timeout=timeout).wait()


def spawn_runs_api(
    state_dir: Path, *, token: SecretStr, port: int = 0, timeout: float = 30
) -> Starting:
    """The reference Runs API server; ``token`` reaches it in its environment only."""
    state_dir = _state_dir(state_dir)
    command = [sys.executable, "-m", "orchestrator.runs_api_server", "--host", LOOPBACK]
    command += ["--port", str(port), "--db", str(state_dir / "runs-api.sqlite3")]
    command += ["--token-env", DEFAULT_TOKEN_ENV, "--quiet"]
    env = base_environ()
    env[DEFAULT_TOKEN_ENV] = token.get_secret_value()
    log = state_dir / LOG_DIR / "runs-api.log"
    return spawn(
        "runs-api",
        command,
        state_dir=state_dir,
        env=env,
        ready=_log_ready(log, _RUNS_API_READY),
        timeout=timeout,
    )


def start_runs_api(
    state_dir: Path, *, token: SecretStr, port: int = 0, timeout: float = 30
) -> ServiceRecord:
    """Start the reference Runs API server and wait until it listens."""
    return spawn_runs_api(state_dir, token=token, port=port, timeout=timeout).wait()


def start_vault(
    state_dir: Path, *, envs: Iterable[str] = (ENV,), timeout: float = 30
) -> DevVaultState:
    """Start the OpenBao dev server detached (``orchestrator.dev_vault``) and record it.

    Its demo secrets are random unless ``ORCHESTRATOR_DEV_VAULT_<KEY>`` is set here.

    Raises:
        CredentialError: it did not start, or one recorded there still runs.
    """
    state_dir = _state_dir(state_dir)
    vault = start_background(state_dir, envs=envs, startup_timeout=timeout)
    record = ServiceRecord(
        name="vault",
        pid=vault.pid,
        start_ticks=vault.start_ticks,
        url=vault.address,
        log=state_dir / "dev-vault.log",
    )
    _record(state_dir, record)
    return vault


def read_secret_id(state_dir: Path, env: str = ENV) -> SecretStr:
    """The env's AppRole secret_id, from the 0600 file the dev Vault wrote.

    Raises:
        DevStackError: there is no such file (the dev Vault is not running).
    """
    path = secret_id_file(state_dir.resolve(), env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DevStackError(f"no AppRole secret_id file {path}", service="vault") from None
    return SecretStr(text.strip().partition("=")[2])


def vault_settings(state_dir: Path, vault: DevVaultState, env: str = ENV) -> VaultSettings:
    """Settings that log in as ``env``'s AppRole, with the secret_id in memory."""
    return VaultSettings(
        address=vault.address,
        role_id=SecretStr(vault.role_ids[env]),
        secret_id=read_secret_id(state_dir, env),
    )


def read_cloud_token(state_dir: Path, vault: DevVaultState, env: str = ENV) -> SecretStr:
    """The Runs API token in ``env``'s Vault secret, read as a run reads it (AppRole)."""
    settings = vault_settings(state_dir, vault, env)
    with open_broker(settings, env, redactor=get_redactor()) as broker:
        return SecretStr(broker.get(CLOUD_TOKEN))


def run_environ(state_dir: Path, *, home: Path, env: str = ENV) -> dict[str, str]:
    """Variables a process needs to run flows against the stack, as the worker has them.

    ``ORCHESTRATOR_HOME`` and the env's AppRole secret_id (``ORCHESTRATOR_VAULT_SECRET_ID``):
    keep the result in memory or a process environment, never on a command line.
    """
    return {
        "ORCHESTRATOR_HOME": str(home.resolve()),
        DEFAULT_SECRET_ID_ENV: read_secret_id(state_dir, env).get_secret_value(),
    }


def spawn_worker(
    state_dir: Path,
    *,
    api_url: str,
    home: Path,
    pool: str = WORK_POOL,
    timeout: float = 60,
) -> Starting:
    """``prefect worker start --pool POOL``; ready once the API lists it online.

    Its environment, which its flow runs inherit, is :func:`run_environ` (the
    orchestrator home and the AppRole secret_id); its working folder is the project.
    """
    state_dir = _state_dir(state_dir)
    env = base_environ(prefect_home=state_dir / PREFECT_HOME_DIR)
    env["PREFECT_API_URL"] = api_url
    env["PREFECT_WORKER_QUERY_SECONDS"] = str(WORKER_QUERY_SECONDS)
    env.update(run_environ(state_dir, home=home))
    name = f"orchestrator-{pool}-{os.getpid()}"
    command = _prefect("worker", "start", "--pool", pool, "--type", "process", "--name", name)
    return spawn(
        "worker",
        command,
        state_dir=state_dir,
        env=env,
        ready=lambda _: _worker_online(api_url, pool, name),
        timeout=timeout,
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


def create_work_pool(api_url: str, *, name: str = WORK_POOL) -> None:
    """Create (or overwrite) the process work pool ``name``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    pool = WorkPoolCreate(name=name, type="process", base_job_template=template)
    with _prefect_api(api_url), get_client(sync_client=True) as client:
        client.create_work_pool(pool, overwrite=True)


def deploy(
    api_url: str, *, state_dir: Path, project_dir: Path = PROJECT_DIR, timeout: float = 180
) -> list[str]:
    """``prefect --no-prompt deploy --all`` in ``project_dir``; the deployments' names.

    Raises:
        DevStackError: the deploy failed (its output is in ``logs/deploy.log``).
    """
    state_dir = _state_dir(state_dir)
    env = base_environ(prefect_home=state_dir / PREFECT_HOME_DIR)
    env["PREFECT_API_URL"] = api_url
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
            f"prefect deploy failed; {log} ends:\n{_log_tail(log)}", service="deploy"
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
    with _prefect_api(api_url):
        vault.save(name, overwrite=True)
        CodexServerSettings.from_config(codex).save(name, overwrite=True)
        cloud.save(name, overwrite=True)


@contextlib.contextmanager
def _prefect_api(api_url: str | None) -> Iterator[None]:
    if api_url is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def prepare_sample_repo(dest: Path, *, source: Path = SAMPLE_REPO_SOURCE) -> Path:
    """A git repository at ``dest`` with the sample project committed on ``main``.

    Idempotent: a repository already there is checked (branch ``main``, clean) and kept.

    Raises:
        InvalidInputError: ``dest`` exists but is not a clean git repository with ``main``.
    """
    dest = dest.resolve()
    if dest.exists():
        check_target(dest, "main")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    shutil.copytree(source, temp, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    git(temp, "init", "--quiet", "--initial-branch=main")
    git(temp, "add", "--all")
    git(temp, "commit", "--quiet", "--message", "The sample project (textkit)")
    temp.rename(dest)  # appears complete or not at all
    return dest


def replay_codex_config(replay: Starting | ServiceRecord | str | None) -> CodexServerConfig:
    """Codex settings for the replay provider (``agents.replay.replay_config``).

    Args:
        replay: The provider's record or its base URL; a starting one is waited for.
    """
    from agents.replay import replay_config

    if isinstance(replay, Starting):
        replay = replay.wait()
    if isinstance(replay, ServiceRecord):
        replay = replay.url
    if not replay:
        raise DevStackError("no replay provider to point codex at", service="replay")
    return replay_config(replay)


@dataclass(frozen=True)
class RealModel:
    """A real Responses API model instead of the replay provider.

    Its API key is Vault's ``openai_api_key``: set ``ORCHESTRATOR_DEV_VAULT_OPENAI_API_KEY``
    before the stack starts, or the dev Vault holds a random one.
    """

    base_url: str
    model: str
    provider_name: str = "openai"

    def codex_config(self) -> CodexServerConfig:
        """Settings as docs/real-model.md gives them: codex retries, long turns."""
        provider = ModelProvider(
            name=self.provider_name,
            base_url=self.base_url,
            env_key="OPENAI_API_KEY",
            request_max_retries=4,
            stream_max_retries=5,
        )
        return CodexServerConfig(provider=provider, model=self.model, call_timeout_seconds=1800)


# --- stopping -------------------------------------------------------------------------------


def stop_stack(state_dir: Path, *, timeout: float = 5.0) -> list[ServiceRecord]:
    """Stop every process recorded under ``state_dir`` and all they started; forget them.

    Returns the records of the processes that were still running.
    """
    state_dir = state_dir.resolve()
    if not state_dir.is_dir():
        return []
    services = read_stack(state_dir).services
    running = [s for s in services if s.running]
    doomed = _snapshot(running)
    if read_state(state_dir) is not None:
        stop_background(state_dir, timeout=timeout)  # the dev Vault stops itself cleanly
    terminate(doomed, leaders=[s.pid for s in running if s.name != "vault"], timeout=timeout)
    (state_dir / STACK_FILE).unlink(missing_ok=True)
    return running


def terminate(
    processes: Mapping[int, int], *, leaders: Sequence[int] = (), timeout: float = 5.0
) -> None:
    """SIGTERM every process in ``processes`` (pid: start ticks), wait, then SIGKILL.

    Processes that ``leaders`` start meanwhile are caught by a second snapshot before
    the SIGKILL.
    """
    _signal_all(processes, signal.SIGTERM)
    left = _wait_gone(processes, timeout=timeout)
    live_leaders = [pid for pid in leaders if pid in left]
    left = {**left, **_snapshot_pids(live_leaders)}
    _signal_all(left, signal.SIGKILL)
    left = _wait_gone(left, timeout=timeout)
    if left:
        raise DevStackError(
            f"processes {sorted(left)} survived SIGKILL for {timeout:.0f} s", service="stop"
        )


def _snapshot(services: Sequence[ServiceRecord]) -> dict[int, int]:
    return _snapshot_pids([s.pid for s in services])


def _snapshot_pids(pids: Sequence[int]) -> dict[int, int]:
    """``pids``, their descendants and their sessions' members: pid -> start ticks."""
    table = process_table()
    roots = set(pids)
    found = {pid for pid in roots if pid in table}
    found |= {info.pid for info in table.values() if info.session in roots}
    for pid in list(found):
        found |= set(descendants(pid, table))
    found.discard(os.getpid())
    return {pid: table[pid].start_ticks for pid in found}


def _signal_all(processes: Mapping[int, int], signum: int) -> None:
    for pid, ticks in processes.items():
        if is_same_process(pid, ticks):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)


def _wait_gone(processes: Mapping[int, int], *, timeout: float) -> dict[int, int]:
    """Wait until every process is gone (or the timeout); the ones left."""
    deadline = time.monotonic() + timeout
    left = dict(processes)
    while left:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
            if not is_same_process(pid, left[pid]):
                del left[pid]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return left


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        # As the server will bind: connections of a stopped one in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            raise DevStackError(
                f"port {port} on {LOOPBACK} is in use; pass another port", service="prefect-server"
            ) from None


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"


# --- the whole stack ------------------------------------------------------------------------


Part = Literal["prefect", "worker", "deploy"]


@dataclass
class DevStack:
    """Every part, started together; a context manager that stops what it started.

    Attributes:
        state_dir: The state folder (see the module docstring).
        home: The orchestrator home of the worker's runs (``.runs/``, ``out/``, ``work/``).
        port: The Prefect server's port.
        model: A real model instead of the replay provider.
        fixtures: The replay fixture set.
        parts: Which of the Prefect server, the deploy and the worker to start; without
            ``prefect`` the blocks go to the API this process is configured for.
        pool: The work pool's name.
    """

    state_dir: Path
    home: Path
    port: int = DEFAULT_PORT
    model: RealModel | None = None
    fixtures: Path = SAMPLE_FIXTURES
    parts: frozenset[Part] = frozenset({"prefect", "deploy", "worker"})
    pool: str = WORK_POOL
    info: StackInfo | None = field(default=None, init=False)

    def start(self) -> StackInfo:
        """Start every part; on any failure stop what was started and raise.

        Raises:
            DevStackError: a part did not start, or a stack recorded here still runs.
            CredentialError: the dev Vault did not start.
        """
        self.state_dir = _state_dir(self.state_dir)
        self.home = self.home.resolve()
        self._check_not_running()
        stop_stack(self.state_dir)  # leftovers of a stack that died
        started = time.monotonic()
        try:
            self.info = self._start_all(started)
        except BaseException:
            self.stop()
            raise
        _update_stack(self.state_dir, lambda state: setattr(state, "info", self.info))
        return self.info

    def stop(self) -> list[ServiceRecord]:
        """Stop every process recorded in the state folder (see :func:`stop_stack`)."""
        return stop_stack(self.state_dir)

    def run_environ(self) -> dict[str, str]:
        """Variables for a process that runs flows against this stack (see :func:`run_environ`)."""
        return run_environ(self.state_dir, home=self.home)

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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
        server = (
            spawn_prefect_server(state_dir, port=self.port) if "prefect" in self.parts else None
        )
        replay = None if self.model else spawn_replay(state_dir, fixtures=self.fixtures)
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
        deployments, pool = self._start_workload(api_url)
        return StackInfo(
            state_dir=state_dir,
            home=self.home,
            project_dir=PROJECT_DIR,
            ui_url=ui_url,
            api_url=api_url or "",
            work_pool=pool,
            deployments=deployments,
            nightly_schedule=nightly_schedule(api_url) if deployments and api_url else "",
            vault_address=vault.address,
            env=ENV,
            runs_api_url=cloud_url,
            cloud_workspace=CLOUD_WORKSPACE,
            model_url=codex.provider.base_url,
            model=codex.model,
            replay_fixtures=None if self.model else self.fixtures,
            sample_repo=repo,
            started_in_seconds=round(time.monotonic() - started, 1),
        )

    def _start_workload(self, api_url: str | None) -> tuple[list[str], str]:
        """Work pool, worker and deployments (the worker starts while the deploy runs)."""
        if api_url is None:
            return [], ""
        create_work_pool(api_url, name=self.pool)
        worker = None
        if "worker" in self.parts:
            worker = spawn_worker(self.state_dir, api_url=api_url, home=self.home, pool=self.pool)
        deployments = deploy(api_url, state_dir=self.state_dir) if "deploy" in self.parts else []
        if worker is not None:
            worker.wait()
        return deployments, self.pool


def nightly_schedule(api_url: str, *, deployment: str = "nightly/nightly") -> str:
    """The nightly deployment's schedules as text, read back from the API."""
    response = httpx.get(f"{api_url}/deployments/name/{deployment}", timeout=10)
    if response.status_code != 200:
        return ""
    schedules = [s["schedule"] for s in response.json().get("schedules", [])]
    return ", ".join(
        f"cron {s['cron']} ({s.get('timezone') or 'UTC'})" for s in schedules if "cron" in s
    )


def stack_processes(state_dir: Path) -> dict[int, int]:
    """Every live process of the stack recorded under ``state_dir``: pid -> start ticks.

    The recorded processes, their descendants and the members of their sessions.
    """
    return _snapshot(read_stack(state_dir.resolve()).services)


def still_running(processes: Mapping[int, int]) -> list[int]:
    """Those of ``processes`` (pid -> start ticks) that still run (a zombie does not)."""
    return sorted(pid for pid, ticks in processes.items() if is_same_process(pid, ticks))


def model_key_warning(environ: Mapping[str, str] = os.environ) -> str | None:
    """A warning when a real model is used but Vault will hold a random API key."""
    variable = "ORCHESTRATOR_DEV_VAULT_" + OPENAI_API_KEY.upper()
    if environ.get(variable):
        return None
    return f"{variable} is not set: the dev Vault holds a random API key for the model"
