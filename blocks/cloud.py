"""The Codex Cloud endpoint block: where the Runs API is; its token comes from Vault."""

from __future__ import annotations

from typing import Any, NamedTuple

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, field_validator

from orchestrator.credentials import CLOUD_TOKEN, CredentialBroker, check_http_url
from orchestrator.runs_api import RunsApiClient
from schemas import SafeId

from ._docs import DOCS_URL, HIDE_INPUT


class CloudConnection(NamedTuple):
    """What a Runs API client needs; ``repr`` never shows the token."""

    base_url: str
    workspace_id: str
    token: str

    def __repr__(self) -> str:
        return f"CloudConnection(base_url={self.base_url!r}, workspace_id={self.workspace_id!r})"


class CodexCloudEndpoint(Block):
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

    base_url: str = Field(
        title="Base URL",
        description="Root of the Runs API, e.g. https://cloud.example/api.",
    )
    workspace_id: SafeId = Field(
        title="Workspace id",
        description="The Codex Cloud workspace runs are imported into.",
    )
    token_key: str = Field(
        default=CLOUD_TOKEN,
        min_length=1,
        title="Token key",
        description="Key of the Runs API bearer token in the environment's Vault secret.",
    )
    timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        title="Timeout (seconds)",
        description="Timeout of each of connect, read and write of one request.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        title="Attempts",
        description="Attempts per import (retries on 429, 5xx and connection errors).",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return check_http_url(value, what="base_url")

    def connection(self, broker: CredentialBroker) -> CloudConnection:
        """Base URL, workspace id and the bearer token from ``broker``.

        Raises:
            CredentialError: the token key is missing from the environment's secret.
        """
        return CloudConnection(self.base_url, self.workspace_id, broker.get(self.token_key))

    def get_client(self, broker: CredentialBroker, **options: Any) -> RunsApiClient:
        """A Runs API client for this endpoint, its token taken from ``broker``.

        Args:
            broker: The open credential broker of the run's environment.
            **options: Passed on to ``RunsApiClient`` (``transport``, ``audit``,
                ``redactor``, ...).
        """
        base_url, workspace_id, token = self.connection(broker)
        options.setdefault("timeout", self.timeout_seconds)
        options.setdefault("max_attempts", self.max_attempts)
        return RunsApiClient(base_url, workspace_id, token, **options)
