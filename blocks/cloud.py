"""The Codex Cloud endpoint block: where the Runs API is; its token comes from Vault.

Its fields are those of :class:`~orchestrator.cloud_settings.CloudEndpoint`, derived from
it (see ``blocks/_fields.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import HttpUrl

from orchestrator.cloud_settings import CloudEndpoint
from orchestrator.credentials import CredentialBroker
from orchestrator.runs_api import RunsApiClient

from ._docs import DOCS_URL, HIDE_INPUT
from ._fields import FieldLayout

CLOUD_FIELDS = FieldLayout.of(CloudEndpoint)
"""Every field of the endpoint, under its own name."""


class CloudConnection(NamedTuple):
    """What a Runs API client needs; ``repr`` never shows the token."""

    base_url: str
    workspace_id: str
    token: str

    def __repr__(self) -> str:
        return f"CloudConnection(base_url={self.base_url!r}, workspace_id={self.workspace_id!r})"


class CodexCloudEndpoint(CLOUD_FIELDS.block_base("CodexCloudEndpointFields")):  # type: ignore[misc]  # fields built at import (blocks/_fields.py)
    """Where run manifests are mirrored: a Codex Cloud Runs API and a workspace.

    Attributes:
        base_url: The Runs API root.
        workspace_id: The workspace runs are imported into.
        token_key: Key of the bearer token in the environment's Vault secret.
    """

    model_config = HIDE_INPUT

    _block_type_name = "Orchestrator Codex Cloud Endpoint"
    _block_type_slug = "orchestrator-codex-cloud-endpoint"
    _documentation_url = HttpUrl(f"{DOCS_URL}#codex-cloud-endpoint-block")
    _description = (
        "The Codex Cloud Runs API that run manifests are mirrored to: base URL and "
        "workspace. Its bearer token is not stored here; it is read from Vault at run time."
    )
    _code_example = """
    ```python
    from blocks import CodexCloudEndpoint, VaultCredentials

    codex_cloud_endpoint = CodexCloudEndpoint.load("BLOCK_NAME")
    with VaultCredentials.load("vault-dev").open_broker("dev") as broker:
        client = codex_cloud_endpoint.get_client(broker)
    ```
    """

    def get_endpoint(self) -> CloudEndpoint:
        """The core endpoint this block describes.

        Raises:
            ValueError: a field is invalid (the message names it, never its value).
        """
        return CLOUD_FIELDS.to_model(self)

    @classmethod
    def from_endpoint(cls, endpoint: CloudEndpoint) -> CodexCloudEndpoint:
        """A block holding ``endpoint``."""
        return cls(**CLOUD_FIELDS.from_model(endpoint))

    def connection(self, broker: CredentialBroker) -> CloudConnection:
        """Base URL, workspace id and the bearer token from ``broker``.

        Raises:
            CredentialError: the token key is missing from the environment's secret.
        """
        endpoint = self.get_endpoint()
        token = broker.get(endpoint.token_key)
        return CloudConnection(endpoint.base_url, endpoint.workspace_id, token)

    def get_client(self, broker: CredentialBroker, **options: Any) -> RunsApiClient:
        """A Runs API client for this endpoint, its token taken from ``broker``.

        Args:
            broker: The open credential broker of the run's environment.
            **options: Passed on to ``RunsApiClient`` (``transport``, ``audit``,
                ``redactor``, ...).

        Raises:
            CredentialError: the token key is missing from the environment's secret.
        """
        endpoint = self.get_endpoint()
        return endpoint.client(broker.get(endpoint.token_key), **options)
