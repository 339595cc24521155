"""The Vault credentials block: how to reach Vault and log in; never a secret value.

The block holds configuration only: the fields of
:class:`~orchestrator.vault_settings.VaultSettings` (derived from it, see
``blocks/_fields.py``) except the two that settings keep in memory only.
Its AppRole ``role_id`` is a ``SecretStr`` (it names a role and is worth hiding, but logs
in nobody alone). The AppRole secret_id and a Vault token are not fields at all: they are
read at run time from the environment variables named by ``secret_id_env`` /
``token_env`` of the process that opens the broker, so no saved block document, and so
no Prefect database, ever holds a secret.
"""

from __future__ import annotations

from pydantic import HttpUrl

from orchestrator.credentials import CredentialBroker, open_broker
from orchestrator.redaction import Redactor, get_redactor
from orchestrator.vault_settings import VaultSettings

from ._docs import DOCS_URL, HIDE_INPUT
from ._fields import FieldLayout

VAULT_FIELDS = FieldLayout.of(VaultSettings, exclude={"secret_id", "token"})
"""Every setting but the secret_id and the token, under the settings' own names."""


class VaultCredentials(VAULT_FIELDS.block_base("VaultCredentialsFields")):  # type: ignore[misc]  # fields built at import (blocks/_fields.py)
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

    def get_settings(self) -> VaultSettings:
        """The core settings this block describes (no secret in them).

        Raises:
            ValueError: the fields do not combine (e.g. approle without a role_id).
        """
        return VAULT_FIELDS.to_model(self)

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> VaultCredentials:
        """A block holding ``settings`` (their in-memory secret_id and token left out)."""
        return cls(**VAULT_FIELDS.from_model(settings))

    def open_broker(self, env: str, *, redactor: Redactor | None = None) -> CredentialBroker:
        """Log in and read ``env``'s secret into an in-memory broker (a context manager).

        Raises:
            CredentialError: Vault down, sealed, refused, forbidden, or the secret missing.
        """
        return open_broker(self.get_settings(), env, redactor=redactor or get_redactor())
