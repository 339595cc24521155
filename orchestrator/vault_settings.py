"""How to reach Vault, log in, and find an environment's secret (no Vault client here).

:class:`VaultSettings` is the one declaration of these settings: the credential broker
(:mod:`orchestrator.credentials`) opens Vault with it, the ``VaultCredentials`` block
derives its fields from it (titles and descriptions included: they are the block's
form in the Prefect UI), and :func:`load_vault_settings` reads it from
``ORCHESTRATOR_VAULT_*`` for processes that have no Prefect block to load (a cron job
running ``orchestrator sync``). This module imports no hvac, so all three can be
imported cheaply.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas import check_http_url, check_safe_id

from .exceptions import InvalidInputError

OPENAI_API_KEY = "openai_api_key"
"""Key of the model provider's API key (optional in dev, where the replay model runs)."""
CLOUD_TOKEN = "cloud_token"
"""Key of the Codex Cloud Runs API bearer token."""
SECRET_KEYS: tuple[str, ...] = (CLOUD_TOKEN, OPENAI_API_KEY)
"""Every key the orchestrator reads from an environment's secret."""

DEFAULT_KV_MOUNT = "secret"
DEFAULT_PATH_TEMPLATE = "codex/orchestrator/{env}"
DEFAULT_APPROLE_MOUNT = "approle"
DEFAULT_TOKEN_ENV = "VAULT_TOKEN"
DEFAULT_SECRET_ID_ENV = "ORCHESTRATOR_VAULT_SECRET_ID"
VAULT_AUTH_ENV_VARS = frozenset({"VAULT_TOKEN", "BAO_TOKEN", DEFAULT_SECRET_ID_ENV})
"""Variables that carry Vault credentials; never handed on to a child process."""
VAULT_ENV_PREFIX = "ORCHESTRATOR_VAULT_"
"""Prefix of the variables :func:`load_vault_settings` reads (``..._ADDRESS`` ...)."""

ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_MOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./-]*$"
_IN_MEMORY_ONLY = frozenset({"secret_id", "token"})
"""Fields never read from a block or ``ORCHESTRATOR_VAULT_*``: they come at open time from
the variables ``secret_id_env`` / ``token_env`` name."""

AuthMethod = Literal["token", "approle"]


class VaultSettings(BaseModel):
    """How to reach Vault, log in, and find an environment's secret.

    ``token`` and ``secret_id`` exist for callers that hold them in memory (tests, the
    dev server); normally both are left unset and read at open time from the
    environment variables named by ``token_env`` and ``secret_id_env``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    address: str = Field(
        title="Address", description="Vault address, e.g. https://vault.example:8200."
    )
    auth_method: AuthMethod = Field(
        default="approle",
        title="Auth method",
        description="How to log in: 'approle' (one policy-scoped role per environment) "
        "or 'token' (a token supplied at run time).",
    )
    role_id: SecretStr | None = Field(
        default=None,
        title="AppRole role_id",
        description="The AppRole role_id of this environment's role (approle only).",
    )
    secret_id: SecretStr | None = Field(
        default=None,
        title="AppRole secret_id",
        description="The AppRole secret_id held in memory; when unset, it is read from "
        "the variable secret_id_env names when the broker opens.",
    )
    secret_id_env: str = Field(
        default=DEFAULT_SECRET_ID_ENV,
        pattern=ENV_VAR_PATTERN,
        title="secret_id variable",
        description="Environment variable that carries the AppRole secret_id at run time; "
        "the secret_id itself is never saved in a block or a file.",
    )
    token: SecretStr | None = Field(
        default=None,
        title="Vault token",
        description="A Vault token held in memory; when unset, it is read from the "
        "variable token_env names when the broker opens.",
    )
    token_env: str = Field(
        default=DEFAULT_TOKEN_ENV,
        pattern=ENV_VAR_PATTERN,
        title="Token variable",
        description="Environment variable that carries the Vault token at run time "
        "(auth method 'token'); the token itself is never saved in a block or a file.",
    )
    approle_mount: str = Field(
        default=DEFAULT_APPROLE_MOUNT,
        pattern=_MOUNT_PATTERN,
        title="AppRole mount",
        description="Path the AppRole auth method is mounted at.",
    )
    namespace: str | None = Field(
        default=None, title="Namespace", description="Vault Enterprise namespace, if any."
    )
    kv_mount: str = Field(
        default=DEFAULT_KV_MOUNT,
        pattern=_MOUNT_PATTERN,
        title="KV mount",
        description="Mount point of the KV version 2 secrets engine.",
    )
    path_template: str = Field(
        default=DEFAULT_PATH_TEMPLATE,
        title="Path template",
        description="Secret path below the KV mount; '{env}' is replaced by the environment.",
    )
    timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        title="Timeout (seconds)",
        description="Timeout of each request to Vault.",
    )
    verify_tls: bool = Field(
        default=True, title="Verify TLS", description="Verify Vault's TLS certificate."
    )
    ca_cert_path: str | None = Field(
        default=None,
        title="CA bundle",
        description="Path of a CA bundle to verify Vault's certificate with.",
    )
    renew_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        title="Renew check interval (seconds)",
        description="How often an open broker checks whether its token needs renewing.",
    )
    renew_threshold_seconds: float = Field(
        default=300.0,
        ge=0,
        title="Renew below (seconds)",
        description="Renew the token once its remaining TTL falls below this.",
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return check_http_url(value, what="Vault address")

    @field_validator("path_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        if fields != {"env"} or value.startswith("/") or ".." in value:
            raise ValueError(
                "path_template must be a relative path with exactly one '{env}' placeholder"
            )
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> VaultSettings:
        if self.auth_method == "approle" and (self.role_id is None or self.token):
            raise ValueError("auth_method 'approle' needs a role_id and takes no token")
        if self.auth_method == "token" and (self.role_id or self.secret_id):
            raise ValueError("auth_method 'token' takes no role_id or secret_id")
        return self

    def secret_path(self, env: str) -> str:
        """The KV path (below ``kv_mount``) of ``env``'s secret."""
        return self.path_template.format(env=check_safe_id(env))

    def auth_env_vars(self) -> frozenset[str]:
        """Names of the environment variables that may carry this Vault's credentials."""
        return VAULT_AUTH_ENV_VARS | {self.token_env, self.secret_id_env}


def load_vault_settings(environ: Mapping[str, str] | None = None) -> VaultSettings | None:
    """Vault settings from ``ORCHESTRATOR_VAULT_<FIELD>`` variables; None without an address.

    ``ORCHESTRATOR_VAULT_ADDRESS`` turns it on; every other field of
    :class:`VaultSettings` may be set the same way (``..._ROLE_ID``, ``..._AUTH_METHOD``,
    ``..._KV_MOUNT`` ...), except the secret_id and the token themselves, which are read
    when the broker opens, from the variables ``secret_id_env`` and ``token_env`` name.

    Raises:
        InvalidInputError: a variable is invalid; the message names it, never its value.
    """
    environ = os.environ if environ is None else environ
    if not environ.get(VAULT_ENV_PREFIX + "ADDRESS"):
        return None
    values = {
        name: environ[variable]
        for name in VaultSettings.model_fields
        if name not in _IN_MEMORY_ONLY and (variable := vault_env_var(name)) in environ
    }
    try:
        return VaultSettings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{vault_env_var(str(e['loc'][0]))}: " if e["loc"] else "")
            + str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise InvalidInputError(f"invalid Vault settings in the environment: {problems}") from None


def vault_env_var(field: str) -> str:
    """The variable :func:`load_vault_settings` reads ``field`` from."""
    return VAULT_ENV_PREFIX + field.upper()


def is_env_var_name(name: str) -> bool:
    return re.fullmatch(ENV_VAR_PATTERN, name) is not None
