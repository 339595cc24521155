"""The stack's parts that are not Prefect: how each is spawned, recorded and waited for.

Every part is started detached through the process supervisor (it outlives the
``orchestrator serve`` that started it), its output in ``logs/<name>.log``, recorded in
``stack.json`` by PID and start time, and stopped by :func:`devstack.stop_stack`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from orchestrator.credentials import (
    CLOUD_TOKEN,
    DEFAULT_SECRET_ID_ENV,
    OPENAI_API_KEY,
    VaultSettings,
    open_broker,
)
from orchestrator.exceptions import DevStackError
from orchestrator.redaction import get_redactor
from orchestrator.supervisor import ReadyCheck, Supervised, clean_environ, ready_line, spawn
from schemas import CodexServerConfig, ModelProvider

from ._records import LOG_DIR, ServiceRecord, record_service, state_folder
from ._uvicorn import LOOPBACK
from ._wire import REPLAY_READY, RUNS_API_READY, RUNS_API_TOKEN_ENV, ready_pattern
from .samples import fixture_set
from .vault import SUPERVISOR_LOG as VAULT_LOG
from .vault import DevVaultState, secret_id_file, start_background

ENV = "dev"


@dataclass
class Starting:
    """A part that is spawned and recorded, and not yet known to be ready."""

    process: Supervised
    record: ServiceRecord
    ready: ReadyCheck
    state_dir: Path
    timeout: float
    _ready: bool = field(default=False, init=False)

    def wait(self) -> ServiceRecord:
        """Wait until it is ready; the record, now with its URL (also in ``stack.json``).

        Raises:
            ProcessError: it exited, or was not ready within its timeout.
        """
        if not self._ready:
            url = self.process.wait_ready(self.ready, timeout=self.timeout)
            self.record = self.record.model_copy(update={"url": url})
            record_service(self.state_dir, self.record)
            self._ready = True
        return self.record


def spawn_part(
    name: str,
    command: Sequence[str],
    *,
    state_dir: Path,
    env: Mapping[str, str],
    ready: ReadyCheck,
    timeout: float,
    cwd: Path | None = None,
) -> Starting:
    """Start ``command`` detached, output to ``logs/<name>.log``; record it in ``stack.json``."""
    state_dir = state_folder(state_dir)
    log = state_dir / LOG_DIR / f"{name}.log"
    process = spawn(name, command, log=log, env=env, cwd=cwd or state_dir, detached=True)
    record = ServiceRecord(name=name, pid=process.pid, start_ticks=process.ref.start_ticks, log=log)
    record_service(state_dir, record)
    return Starting(process, record, ready, state_dir, timeout)


def spawn_replay(
    state_dir: Path, *, fixtures: Path | None = None, port: int = 0, timeout: float = 30
) -> Starting:
    """The replay model provider serving ``fixtures``; requests logged to a JSON-lines file."""
    state_dir = state_folder(state_dir)
    fixtures = (fixtures or fixture_set()).resolve()
    command = [sys.executable, "-m", "devstack.replay", "--fixtures", str(fixtures)]
    command += ["--host", LOOPBACK, "--port", str(port)]
    command += ["--request-log", str(state_dir / "replay-requests.jsonl")]
    ready = ready_line(ready_pattern(REPLAY_READY))
    return spawn_part(
        "replay", command, state_dir=state_dir, env=clean_environ(), ready=ready, timeout=timeout
    )


def start_replay(
    state_dir: Path, *, fixtures: Path | None = None, port: int = 0, timeout: float = 30
) -> ServiceRecord:
    """Start the replay provider; its record's ``url`` is codex's ``base_url`` (``.../v1``)."""
    return spawn_replay(state_dir, fixtures=fixtures, port=port, timeout=timeout).wait()


def spawn_runs_api(
    state_dir: Path, *, token: SecretStr, port: int = 0, timeout: float = 30
) -> Starting:
    """The reference Runs API server; ``token`` reaches it in its environment only."""
    state_dir = state_folder(state_dir)
    command = [sys.executable, "-m", "devstack.runs_api", "--host", LOOPBACK]
    command += ["--port", str(port), "--db", str(state_dir / "runs-api.sqlite3")]
    command += ["--token-env", RUNS_API_TOKEN_ENV, "--quiet"]
    env = clean_environ({RUNS_API_TOKEN_ENV: token.get_secret_value()})
    ready = ready_line(ready_pattern(RUNS_API_READY))
    return spawn_part(
        "runs-api", command, state_dir=state_dir, env=env, ready=ready, timeout=timeout
    )


def start_runs_api(
    state_dir: Path, *, token: SecretStr, port: int = 0, timeout: float = 30
) -> ServiceRecord:
    """Start the reference Runs API server and wait until it listens."""
    return spawn_runs_api(state_dir, token=token, port=port, timeout=timeout).wait()


def start_vault(
    state_dir: Path, *, envs: Iterable[str] = (ENV,), timeout: float = 30
) -> DevVaultState:
    """Start the OpenBao dev server detached (:func:`devstack.vault.start_background`); record it.

    Its demo secrets are random unless ``ORCHESTRATOR_DEV_VAULT_<KEY>`` is set here.

    Raises:
        CredentialError: it did not start, or one recorded there still runs.
    """
    state_dir = state_folder(state_dir)
    vault = start_background(state_dir, envs=envs, startup_timeout=timeout)
    record = ServiceRecord(
        name="vault",
        pid=vault.pid,
        start_ticks=vault.start_ticks,
        url=vault.address,
        log=state_dir / VAULT_LOG,
    )
    record_service(state_dir, record)
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


def replay_codex_config(replay: Starting | ServiceRecord | str | None) -> CodexServerConfig:
    """Codex settings for the replay provider (:func:`devstack.replay.replay_config`).

    Args:
        replay: The provider's record or its base URL; a starting one is waited for.

    Raises:
        DevStackError: there is no provider to point codex at.
    """
    from .replay import replay_config

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


def model_key_warning(environ: Mapping[str, str] = os.environ) -> str | None:
    """A warning when a real model is used but Vault will hold a random API key."""
    variable = "ORCHESTRATOR_DEV_VAULT_" + OPENAI_API_KEY.upper()
    if environ.get(variable):
        return None
    return f"{variable} is not set: the dev Vault holds a random API key for the model"
