"""The Vault credentials block: how to reach Vault and log in; never a secret value.

The block holds configuration only. Its AppRole ``role_id`` is a ``SecretStr`` (it names
a role and is worth hiding, but logs in nobody alone). The AppRole secret_id and a Vault
token are not fields at all: they are read at run time from the environment variables
named by ``secret_id_env`` / ``token_env`` of the process that opens the broker, so no
saved block document, and so no Prefect database, ever holds a secret.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, SecretStr, ValidationError, model_validator

from orchestrator.credentials import (
    DEFAULT_APPROLE_MOUNT,
    DEFAULT_KV_MOUNT,
    DEFAULT_PATH_TEMPLATE,
    DEFAULT_SECRET_ID_ENV,
    DEFAULT_TOKEN_ENV,
    CredentialBroker,
    VaultSettings,
    open_broker,
)
from orchestrator.redaction import Redactor, get_redactor

from ._docs import DOCS_URL, HIDE_INPUT, describe_errors


class VaultCredentials(Block):
    """How the orchestrator reaches Vault and logs in to read an environment's secrets.

    Attributes:
        address: Vault address.
        auth_method: ``approle`` (a role per environment) or ``token``.
        role_id: AppRole role_id (``approle`` only).
        secret_id_env: Environment variable carrying the AppRole secret_id at run time.
        token_env: Environment variable carrying the Vault token at run time.
    """

    model_config = HIDE_INPUT

    _block_type_name = "Orchestrator Vault Credentials"
    _block_type_slug = "orchestrator-vault-credentials"
    _documentation_url = HttpUrl(f"{DOCS_URL}#vault-credentials-block")
    _description = (
        "Where the orchestrator's Vault is and how it logs in (AppRole or token). "
        "Holds no secret: the AppRole secret_id or token is read from the environment "
        "at run time, and the environment's secrets are fetched into memory."
    )
    _code_example = """
    ```python
    from blocks import VaultCredentials

    vault_credentials = VaultCredentials.load("BLOCK_NAME")
    with vault_credentials.open_broker("dev") as broker:
        token = broker.get("cloud_token")
    ```
    """

    address: str = Field(
        title="Address",
        description="Vault address, e.g. https://vault.example:8200.",
    )
    auth_method: Literal["approle", "token"] = Field(
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
    secret_id_env: str = Field(
        default=DEFAULT_SECRET_ID_ENV,
        title="secret_id variable",
        description="Environment variable that carries the AppRole secret_id at run time; "
        "the secret_id itself is never saved in the block.",
    )
    token_env: str = Field(
        default=DEFAULT_TOKEN_ENV,
        title="Token variable",
        description="Environment variable that carries the Vault token at run time "
        "(auth method 'token'); the token itself is never saved in the block.",
    )
    approle_mount: str = Field(
        default=DEFAULT_APPROLE_MOUNT,
        title="AppRole mount",
        description="Path the AppRole auth method is mounted at.",
    )
    namespace: str | None = Field(
        default=None,
        title="Namespace",
        description="Vault Enterprise namespace, if any.",
    )
    kv_mount: str = Field(
        default=DEFAULT_KV_MOUNT,
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
        default=True,
        title="Verify TLS",
        description="Verify Vault's TLS certificate.",
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

    @model_validator(mode="after")
    def _check_combination(self) -> VaultCredentials:
        self.get_settings()
        return self

    def get_settings(self) -> VaultSettings:
        """The core settings this block describes (no secret in them).

        Raises:
            ValueError: the fields do not combine (e.g. approle without a role_id).
        """
        try:
            return VaultSettings(
                address=self.address,
                auth_method=self.auth_method,
                role_id=self.role_id,
                secret_id_env=self.secret_id_env,
                token_env=self.token_env,
                approle_mount=self.approle_mount,
                namespace=self.namespace,
                kv_mount=self.kv_mount,
                path_template=self.path_template,
                timeout_seconds=self.timeout_seconds,
                verify_tls=self.verify_tls,
                ca_cert_path=self.ca_cert_path,
                renew_interval_seconds=self.renew_interval_seconds,
                renew_threshold_seconds=self.renew_threshold_seconds,
            )
        except ValidationError as exc:
            raise ValueError(f"invalid Vault credentials block: {describe_errors(exc)}") from None

    def open_broker(self, env: str, *, redactor: Redactor | None = None) -> CredentialBroker:
        """Log in and read ``env``'s secret into an in-memory broker (a context manager).

        Raises:
            CredentialError: Vault down, sealed, refused, forbidden, or the secret missing.
        """
        return open_broker(self.get_settings(), env, redactor=redactor or get_redactor())
