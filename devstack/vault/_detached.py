"""A dev Vault that outlives its starter (``make serve``), recorded in a state folder.

:func:`start_background` starts ``python -m devstack.vault STATE_DIR`` detached (a
supervisor process running one :class:`DevVault` until SIGTERM) and waits for its ready
line. The supervisor records, with no secret in them::

    vault.json        its PID and start time, the server's, the address, the role_ids
    vault.pid         its PID
    dev-vault.log     its output (the server's own log is vault-home/bao.log)

and one mode-0600 ``approle-<env>.env`` per environment holding that env's secret_id,
because the processes that log in with it (workers, flow runs) start later. All of it
is removed when it stops. :func:`stop_background` signals a PID only while it still
belongs to the recorded process (same start time).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.credentials import CredentialCause
from orchestrator.exceptions import CredentialError, OrchestratorError, ProcessError
from orchestrator.processes import is_same_process, start_ticks
from orchestrator.supervisor import clean_environ, ready_line, reap, spawn, terminate
from schemas import check_safe_id

from .._foreground import stop_signals
from .._wire import VAULT_READY, ready_pattern
from ._secrets import demo_secrets, given_values, write_private
from ._server import DevVault

STATE_FILE = "vault.json"
PID_FILE = "vault.pid"
HOME_DIR = "vault-home"
SUPERVISOR_LOG = "dev-vault.log"
_IMPORT_SECONDS = 30.0
"""Added to the server's start-up timeout: the supervisor's interpreter starts first."""


class DevVaultState(BaseModel):
    """What a detached dev server records in its state folder (no secret in it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int = Field(description="The supervisor process (it stops the server on SIGTERM).")
    start_ticks: int = Field(description="Its start time, so a recycled PID is never hit.")
    server_pid: int
    server_start_ticks: int
    address: str
    envs: tuple[str, ...]
    role_ids: dict[str, str] = Field(description="AppRole role_id per env (not secret).")


def start_background(
    state_dir: Path,
    *,
    envs: Iterable[str] = ("dev",),
    port: int | None = None,
    startup_timeout: float = 30.0,
) -> DevVaultState:
    """Start a dev server that outlives this process, recorded under ``state_dir``.

    Its demo secrets are random unless ``ORCHESTRATOR_DEV_VAULT_<KEY>`` is set here.
    Stop it with :func:`stop_background`.

    Raises:
        CredentialError: a server recorded there still runs, or it did not start in time.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    running = read_state(state_dir)
    if running is not None and is_same_process(running.pid, running.start_ticks):
        raise CredentialError(
            f"a dev Vault recorded in {state_dir} is already running at {running.address}",
            cause=CredentialCause.ERROR,
        )
    _remove_state(state_dir)
    command = [sys.executable, "-m", "devstack.vault", str(state_dir)]
    command += [f"--timeout={startup_timeout}", f"--port={port or 0}"]
    command += [f"--env={check_safe_id(env)}" for env in envs]
    process = spawn(
        "dev-vault",
        command,
        log=state_dir / SUPERVISOR_LOG,
        env=clean_environ(given_values(os.environ)),
        cwd=state_dir,
        detached=True,
    )
    try:
        process.wait_ready(
            ready_line(ready_pattern(VAULT_READY)), timeout=startup_timeout + _IMPORT_SECONDS
        )
    except ProcessError as exc:
        raise CredentialError(f"the dev Vault did not start: {exc}", cause="down") from None
    state = read_state(state_dir)
    if state is None:
        raise CredentialError(f"the dev Vault left no {STATE_FILE} in {state_dir}", cause="down")
    return state


def read_state(state_dir: Path) -> DevVaultState | None:
    """The detached server recorded under ``state_dir``, or ``None``."""
    try:
        text = (state_dir / STATE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return DevVaultState.model_validate_json(text)


def stop_background(state_dir: Path, *, timeout: float = 10.0) -> bool:
    """Stop the server recorded under ``state_dir`` and remove its files.

    Returns whether a running server was stopped.
    """
    state = read_state(state_dir)
    recorded = {}
    if state is not None:
        recorded = {state.pid: state.start_ticks, state.server_pid: state.server_start_ticks}
    running = {pid: ticks for pid, ticks in recorded.items() if is_same_process(pid, ticks)}
    if running:
        terminate(running, timeout=timeout)
        reap(running)
    _remove_state(state_dir)
    return bool(running)


def supervise(state_dir: Path, *, envs: list[str], port: int, timeout: float) -> int:
    """Run one dev server until SIGTERM or SIGINT (or until it dies), then remove the state.

    What ``python -m devstack.vault`` runs.
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal that started make serve may go
    with stop_signals() as stop:
        try:
            values = {env: demo_secrets(env, environ=os.environ) for env in envs}
            home = state_dir / HOME_DIR
            with DevVault(
                envs=envs, port=port or None, values=values, home=home, startup_timeout=timeout
            ) as vault:
                _record(vault, state_dir)
                print(f"{VAULT_READY}{vault.address} (server pid {vault.pid})", flush=True)
                stop.wait(alive=lambda: vault.running)
                ended = "stopped" if stop.requested else f"exited with code {vault.exit_code}"
                print(f"dev Vault server {ended}", flush=True)
        except OrchestratorError as exc:  # the message says what to do; no traceback
            print(f"error: {exc}", flush=True)
            return 1
        finally:
            _remove_state(state_dir)
    return 0


def _record(vault: DevVault, state_dir: Path) -> None:
    vault.write_secret_id_files(state_dir)
    state = DevVaultState(
        pid=os.getpid(),
        start_ticks=start_ticks(os.getpid()),
        server_pid=vault.pid,
        server_start_ticks=vault.start_ticks,
        address=vault.address,
        envs=vault.envs,
        role_ids={env: vault.approle(env).role_id for env in vault.envs},
    )
    write_private(state_dir / STATE_FILE, state.model_dump_json(indent=2) + "\n")
    write_private(state_dir / PID_FILE, f"{state.pid}\n")


def _remove_state(state_dir: Path) -> None:
    shutil.rmtree(state_dir / HOME_DIR, ignore_errors=True)
    for path in [state_dir / STATE_FILE, state_dir / PID_FILE, *state_dir.glob("approle-*.env")]:
        path.unlink(missing_ok=True)
