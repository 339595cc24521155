"""The credential broker: one environment's secrets from Vault, held in memory for one run.

    with open_broker(settings, "dev", redactor=workspace.redactor) as broker:
        child_env = broker.subprocess_env({"OPENAI_API_KEY": OPENAI_API_KEY})
        token = broker.get(CLOUD_TOKEN)

Where secrets live:

- The KV v2 secret ``<kv_mount>/<path_template.format(env=env)>`` (by default
  ``secret/codex/orchestrator/<env>``) is read once, when the broker opens, into a dict
  in this process. Every value, the Vault token and the AppRole secret_id are registered
  with the redactor before :func:`open_broker` returns.
- The Vault token is passed to hvac explicitly: hvac never reads ``VAULT_TOKEN`` or
  ``~/.vault-token`` on its own, and nothing here writes a token anywhere.
- A token the broker created (AppRole login) is renewed in a background thread while
  the broker is open and revoked when it closes. A token the caller supplied (auth
  method ``token``) may be renewed but is never revoked: it is not ours.
- Errors name the environment, the address and the cause, never a value; third-party
  errors are translated once, with ``from None`` because hvac and requests errors carry
  the request (and with it the ``X-Vault-Token`` header).

The broker is synchronous (hvac is); opening it costs one login and one read. From async
code call :func:`open_broker` through ``anyio.to_thread.run_sync``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, NoReturn, Protocol

import hvac  # type: ignore[import-untyped]  # hvac ships no type information
import hvac.exceptions  # type: ignore[import-untyped]
import requests
from pydantic import SecretStr

from schemas import check_http_url as check_http_url
from schemas import check_safe_id

from .exceptions import CredentialError
from .redaction import MIN_SECRET_LENGTH, Redactor

# The settings live in their own module (no hvac there); these names stay importable here.
from .vault_settings import CLOUD_TOKEN as CLOUD_TOKEN
from .vault_settings import DEFAULT_APPROLE_MOUNT as DEFAULT_APPROLE_MOUNT
from .vault_settings import DEFAULT_KV_MOUNT as DEFAULT_KV_MOUNT
from .vault_settings import DEFAULT_PATH_TEMPLATE as DEFAULT_PATH_TEMPLATE
from .vault_settings import DEFAULT_SECRET_ID_ENV as DEFAULT_SECRET_ID_ENV
from .vault_settings import DEFAULT_TOKEN_ENV as DEFAULT_TOKEN_ENV
from .vault_settings import OPENAI_API_KEY as OPENAI_API_KEY
from .vault_settings import SECRET_KEYS as SECRET_KEYS
from .vault_settings import VAULT_AUTH_ENV_VARS as VAULT_AUTH_ENV_VARS
from .vault_settings import AuthMethod as AuthMethod
from .vault_settings import VaultSettings as VaultSettings
from .vault_settings import is_env_var_name

logger = logging.getLogger(__name__)


class CredentialCause(StrEnum):
    """The ``cause`` of a :class:`~orchestrator.exceptions.CredentialError`."""

    DOWN = "down"
    """Vault cannot be reached (connection refused, timeout, TLS failure)."""
    SEALED = "sealed"
    """Vault answered 503/501: sealed, standby without forwarding, or not initialised."""
    AUTH_FAILED = "auth_failed"
    """No credentials, or Vault refused them at login."""
    FORBIDDEN = "forbidden"
    """Logged in, but the policy does not allow reading this environment's secret."""
    MISSING_PATH = "missing_path"
    """No secret at this environment's path (or its latest version is deleted)."""
    MISSING_KEY = "missing_key"
    """The secret exists but has no such key."""
    INVALID_SECRET = "invalid_secret"
    """A value is not a string, or too short to be redacted reliably."""
    CLOSED = "closed"
    """The broker was closed; its secrets are gone."""
    ERROR = "error"
    """Any other answer from Vault."""


class RenewCallback(Protocol):
    """Called after each successful token renewal with the token's new TTL."""

    def __call__(self, ttl_seconds: float) -> None: ...


class CredentialBroker:
    """One environment's secrets, in memory, for one run.

    Open it with :func:`open_broker` (from Vault) or :meth:`from_values` (in memory,
    for tests and explicitly configured offline runs). Use it as a context manager, or
    call :meth:`close`. It cannot be pickled, so Prefect can never persist it.
    """

    def __init__(
        self,
        env: str,
        values: Mapping[str, str],
        *,
        source: str,
        keeper: _TokenKeeper | None = None,
        auth_env_vars: frozenset[str] = VAULT_AUTH_ENV_VARS,
    ) -> None:
        """Use :func:`open_broker` or :meth:`from_values`; values must be registered already."""
        self._env = env
        self._values: Mapping[str, str] = MappingProxyType(dict(values))
        self._source = source
        self._keeper = keeper
        self._auth_env_vars = auth_env_vars
        self._closed = False

    @classmethod
    def from_values(
        cls, env: str, values: Mapping[str, str], *, redactor: Redactor
    ) -> CredentialBroker:
        """A broker over ``values`` held in memory (no Vault); each is registered first.

        Raises:
            CredentialError: a value is not a string or is too short to redact.
        """
        env = check_safe_id(env)
        checked = _checked_values(values, env=env)
        redactor.register(*checked.values())
        return cls(env, checked, source="memory")

    @property
    def env(self) -> str:
        return self._env

    @property
    def source(self) -> str:
        """Where the values came from: ``vault:<mount>/<path>`` or ``memory``."""
        return self._source

    @property
    def keys(self) -> frozenset[str]:
        """The names of the secrets held (never the values)."""
        return frozenset(self._values)

    @property
    def owns_token(self) -> bool:
        """Whether the broker created its Vault token and so revokes it on close."""
        return self._keeper is not None and self._keeper.owns_token

    @property
    def renew_error(self) -> CredentialError | None:
        """The last failed token renewal, if any (renewal keeps trying until close)."""
        return self._keeper.last_error if self._keeper else None

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str) -> str:
        """The value of ``key``.

        Raises:
            CredentialError: ``cause="missing_key"`` naming the key, or ``"closed"``.
        """
        if self._closed:
            _fail(
                f"credentials for env '{self._env}' were closed", self._env, CredentialCause.CLOSED
            )
        try:
            return self._values[key]
        except KeyError:
            _fail(
                f"secret key '{key}' is missing from {self._source} (env '{self._env}')",
                self._env,
                CredentialCause.MISSING_KEY,
            )

    def subprocess_env(
        self, mapping: Mapping[str, str], *, base: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Environment variables for a child process: ``{env_var: value of key}``.

        Args:
            mapping: Environment variable name to secret key, e.g.
                ``{"OPENAI_API_KEY": OPENAI_API_KEY}``.
            base: An environment to start from (e.g. ``os.environ``); the variables that
                carry Vault credentials are dropped from it.

        Raises:
            CredentialError: a key is missing (``cause="missing_key"``).
        """
        result = {k: v for k, v in (base or {}).items() if k not in self._auth_env_vars}
        for name, key in mapping.items():
            if not is_env_var_name(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            result[name] = self.get(key)
        return result

    def close(self) -> None:
        """Forget the values; stop renewing and revoke the token if the broker created it."""
        if self._closed:
            return
        self._closed = True
        self._values = MappingProxyType({})
        if self._keeper is not None:
            self._keeper.close()

    def __enter__(self) -> CredentialBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"keys={sorted(self._values)}"
        return f"CredentialBroker(env={self._env!r}, source={self._source!r}, {state})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a CredentialBroker holds secrets in memory and cannot be pickled")


def open_broker(
    settings: VaultSettings,
    env: str,
    *,
    redactor: Redactor,
    environ: Mapping[str, str] | None = None,
    on_renew: RenewCallback | None = None,
) -> CredentialBroker:
    """Log in to Vault, read ``env``'s secret into memory, and return the open broker.

    Args:
        settings: Where Vault is and how to log in.
        env: The environment; selects the secret path (and, through the AppRole's
            policy, what the login may read).
        redactor: Receives the token, the secret_id and every value before this returns.
        environ: Where ``token_env`` / ``secret_id_env`` are looked up (default
            ``os.environ``).
        on_renew: Called after each token renewal (tests, metrics).

    Raises:
        CredentialError: with ``cause`` one of :class:`CredentialCause`; raised before
            any secret is handed out, and never containing one.
    """
    env = check_safe_id(env)
    client = _new_client(settings)
    login = _login(client, settings, env, os.environ if environ is None else environ, redactor)
    keeper = _TokenKeeper(client, login, settings=settings, env=env, on_renew=on_renew)
    try:
        values = _read_secret(client, settings, env)
        redactor.register(*(v for v in values.values() if isinstance(v, str)))
        checked = _checked_values(values, env=env)
    except BaseException:
        keeper.close()
        raise
    keeper.start()
    source = f"vault:{settings.kv_mount}/{settings.secret_path(env)}"
    logger.info("credentials for env %s loaded from %s (%d keys)", env, source, len(checked))
    return CredentialBroker(
        env, checked, source=source, keeper=keeper, auth_env_vars=settings.auth_env_vars()
    )


# --- Vault calls -------------------------------------------------------------------------


@dataclass
class _Login:
    token: str
    owns_token: bool
    ttl_seconds: float
    renewable: bool


def _new_client(settings: VaultSettings) -> Any:
    verify: bool | str = settings.ca_cert_path or settings.verify_tls
    # token="" (not None) so hvac never falls back to VAULT_TOKEN or ~/.vault-token.
    return hvac.Client(
        url=settings.address,
        token="",
        verify=verify,
        timeout=settings.timeout_seconds,
        namespace=settings.namespace,
    )


def _login(
    client: Any, settings: VaultSettings, env: str, environ: Mapping[str, str], redactor: Redactor
) -> _Login:
    if settings.auth_method == "token":
        token = _credential(settings.token, settings.token_env, environ, env, what="Vault token")
        redactor.register(token)
        client.token = token
        with _vault_errors(settings, env, action="checking the token", login=True):
            data = client.auth.token.lookup_self()["data"]
        return _Login(token, False, float(data.get("ttl") or 0), bool(data.get("renewable")))
    assert settings.role_id is not None  # the model validator guarantees it
    secret_id = _credential(
        settings.secret_id, settings.secret_id_env, environ, env, what="AppRole secret_id"
    )
    redactor.register(secret_id)
    with _vault_errors(settings, env, action="logging in with AppRole", login=True):
        auth = client.auth.approle.login(
            role_id=settings.role_id.get_secret_value(),
            secret_id=secret_id,
            mount_point=settings.approle_mount,
            use_token=True,
        )["auth"]
    redactor.register(auth["client_token"])
    return _Login(auth["client_token"], True, float(auth["lease_duration"]), auth["renewable"])


def _credential(
    value: SecretStr | None, env_var: str, environ: Mapping[str, str], env: str, *, what: str
) -> str:
    secret = value.get_secret_value() if value is not None else environ.get(env_var, "")
    if not secret:
        _fail(
            f"no {what} for env '{env}': set the environment variable {env_var}",
            env,
            CredentialCause.AUTH_FAILED,
        )
    return secret


def _read_secret(client: Any, settings: VaultSettings, env: str) -> dict[str, Any]:
    path = settings.secret_path(env)
    with _vault_errors(settings, env, action=f"reading {settings.kv_mount}/{path}", login=False):
        response = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=settings.kv_mount, raise_on_deleted_version=True
        )
    data = response["data"]["data"]
    return dict(data) if isinstance(data, dict) else {}


def _checked_values(values: Mapping[str, Any], *, env: str) -> dict[str, str]:
    for key, value in values.items():
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            _fail(
                f"secret key '{key}' (env '{env}') must be a string of at least "
                f"{MIN_SECRET_LENGTH} characters, so that it can be redacted",
                env,
                CredentialCause.INVALID_SECRET,
            )
    return dict(values)


@contextmanager
def _vault_errors(settings: VaultSettings, env: str, *, action: str, login: bool) -> Iterator[None]:
    """Translate hvac/requests errors into one :class:`CredentialError`, dropping the chain."""
    try:
        yield
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as exc:
        cause, reason = _classify(exc, login=login)
        message = f"Vault at {settings.address} {reason} while {action} (env '{env}')"
        raise CredentialError(message, env=env, cause=cause) from None


def _classify(exc: Exception, *, login: bool) -> tuple[CredentialCause, str]:
    errors = hvac.exceptions
    if isinstance(exc, requests.exceptions.RequestException):
        return CredentialCause.DOWN, f"is unreachable ({type(exc).__name__})"
    if isinstance(exc, errors.VaultDown | errors.VaultNotInitialized):
        return CredentialCause.SEALED, "is sealed or not ready"
    if login and isinstance(exc, errors.Forbidden | errors.Unauthorized | errors.InvalidRequest):
        return CredentialCause.AUTH_FAILED, "refused the credentials"
    if isinstance(exc, errors.Forbidden | errors.Unauthorized):
        return CredentialCause.FORBIDDEN, "denied access (policy)"
    if isinstance(exc, errors.InvalidPath):
        return CredentialCause.MISSING_PATH, "has no secret at this path"
    return CredentialCause.ERROR, f"answered with an error ({type(exc).__name__})"


def _fail(message: str, env: str, cause: CredentialCause) -> NoReturn:
    raise CredentialError(message, env=env, cause=cause)


# --- token lifetime ----------------------------------------------------------------------


class _TokenKeeper:
    """Renews the broker's token in a background thread; revokes it on close if it is ours."""

    def __init__(
        self,
        client: Any,
        login: _Login,
        *,
        settings: VaultSettings,
        env: str,
        on_renew: RenewCallback | None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._env = env
        self._on_renew = on_renew
        self.owns_token = login.owns_token
        self._renewable = login.renewable and login.ttl_seconds > 0
        self._deadline = time.monotonic() + login.ttl_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: CredentialError | None = None

    def start(self) -> None:
        if not self._renewable:
            return  # a non-expiring token (a root or dev token) needs no renewal
        self._thread = threading.Thread(
            target=self._run, name=f"vault-renew-{self._env}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._settings.renew_interval_seconds):
            if self._deadline - time.monotonic() <= self._settings.renew_threshold_seconds:
                self._renew()

    def _renew(self) -> None:
        try:
            with _vault_errors(self._settings, self._env, action="renewing the token", login=False):
                auth = self._client.auth.token.renew_self()["auth"]
        except CredentialError as exc:
            self.last_error = exc
            logger.warning("could not renew the Vault token: %s", exc)
            return
        ttl = float(auth["lease_duration"])
        self._deadline = time.monotonic() + ttl
        self.last_error = None
        logger.debug("Vault token for env %s renewed, ttl %.0f s", self._env, ttl)
        if self._on_renew is not None:
            self._on_renew(ttl)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._settings.timeout_seconds + 1)
        if self.owns_token:
            self._revoke()
        self._client.token = ""

    def _revoke(self) -> None:
        try:
            with _vault_errors(self._settings, self._env, action="revoking the token", login=False):
                self._client.auth.token.revoke_self()
        except CredentialError as exc:
            logger.warning("could not revoke the Vault token: %s", exc)
