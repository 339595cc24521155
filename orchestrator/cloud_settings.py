"""Where the Codex Cloud Runs API is, and the one place that turns that into a client.

- :class:`CloudEndpoint`: base URL, workspace, the key of the bearer token in the
  environment's Vault secret, timeout and attempts. The ``CodexCloudEndpoint`` block
  derives its fields from it (titles and descriptions are its form in the Prefect UI).
- :class:`CloudSettings`: the environment variables ``ORCHESTRATOR_CLOUD_*``. Each one
  that is set overrides what a block or Vault would give (``flows.cloud_client``
  documents the order); set all of URL, WORKSPACE and TOKEN and nothing else is needed.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import SafeId, check_http_url

from .audit import AuditLog
from .exceptions import InvalidInputError
from .redaction import Redactor
from .runs_api import RunsApiClient
from .settings import invalid_variables
from .vault_settings import CLOUD_TOKEN

CLOUD_ENV_PREFIX = "ORCHESTRATOR_CLOUD_"


class CloudEndpoint(BaseModel):
    """A Runs API and the workspace runs are imported into; its token is not held here."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    base_url: str = Field(
        title="Base URL", description="Root of the Runs API, e.g. https://cloud.example/api."
    )
    workspace_id: SafeId = Field(
        title="Workspace id", description="The Codex Cloud workspace runs are imported into."
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

    def client(self, token: str, **options: Any) -> RunsApiClient:
        """A Runs API client of this endpoint with bearer ``token``.

        Args:
            token: The bearer token (registered with the client's redactor).
            **options: Passed on to :class:`RunsApiClient` (``transport``, ``audit``,
                ``redactor``, ...); ``timeout`` and ``max_attempts`` default to the
                endpoint's.
        """
        options.setdefault("timeout", self.timeout_seconds)
        options.setdefault("max_attempts", self.max_attempts)
        return RunsApiClient(self.base_url, self.workspace_id, token, **options)


class CloudSettings(BaseSettings):
    """The Runs API settings of the environment: variables ``ORCHESTRATOR_CLOUD_*``."""

    model_config = SettingsConfigDict(env_prefix=CLOUD_ENV_PREFIX, extra="ignore")

    url: str | None = Field(default=None, description="Runs API base URL.")
    workspace: SafeId | None = Field(default=None, description="Workspace id runs go to.")
    token: SecretStr | None = Field(default=None, description="Bearer token (kept in memory only).")
    timeout: float = Field(default=10.0, gt=0, description="Seconds per attempt and phase.")
    max_attempts: int = Field(default=3, ge=1, le=3, description="Attempts per import.")

    def endpoint(self) -> CloudEndpoint | None:
        """The endpoint URL and WORKSPACE name; None when neither is set.

        Raises:
            InvalidInputError: only one of the two is set, or the URL is invalid.
        """
        if self.url is None and self.workspace is None:
            return None
        if self.url is None or self.workspace is None:
            missing = "URL" if self.url is None else "WORKSPACE"
            raise InvalidInputError(
                f"Runs API settings are incomplete: {CLOUD_ENV_PREFIX}{missing} is not set "
                f"(URL and WORKSPACE go together)"
            )
        try:
            return CloudEndpoint(
                base_url=self.url,
                workspace_id=self.workspace,
                timeout_seconds=self.timeout,
                max_attempts=self.max_attempts,
            )
        except ValidationError as exc:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise InvalidInputError(f"invalid {CLOUD_ENV_PREFIX}URL: {reasons}") from None


def load_cloud_settings(*, complete: bool = True) -> CloudSettings:
    """Read :class:`CloudSettings` from the environment.

    Args:
        complete: Require URL, WORKSPACE and TOKEN (a client needs nothing else). When
            False each may be missing (a block or Vault gives it), but URL and WORKSPACE
            go together.

    Raises:
        InvalidInputError: A variable is missing or invalid (its value is not shown).
    """
    try:
        settings = CloudSettings()
    except ValidationError as exc:
        names = invalid_variables(exc, CLOUD_ENV_PREFIX)
        raise InvalidInputError(f"Runs API settings are invalid: {names}") from None
    unset = [name for name in ("url", "workspace", "token") if getattr(settings, name) is None]
    if complete and unset:
        names = ", ".join(f"{CLOUD_ENV_PREFIX}{name.upper()} (not set)" for name in unset)
        raise InvalidInputError(f"Runs API settings are incomplete: {names}")
    settings.endpoint()  # URL and WORKSPACE are checked now, not when first used
    return settings


def client_from_settings(
    settings: CloudSettings,
    *,
    audit: AuditLog | None = None,
    redactor: Redactor | None = None,
    transport: httpx.BaseTransport | None = None,
) -> RunsApiClient:
    """A :class:`RunsApiClient` configured by complete ``settings`` alone.

    Raises:
        InvalidInputError: URL, WORKSPACE or TOKEN is not set.
    """
    endpoint = settings.endpoint()
    if endpoint is None or settings.token is None:
        raise InvalidInputError(
            f"Runs API settings are incomplete: set {CLOUD_ENV_PREFIX}URL, "
            f"{CLOUD_ENV_PREFIX}WORKSPACE and {CLOUD_ENV_PREFIX}TOKEN"
        )
    return endpoint.client(
        settings.token.get_secret_value(), transport=transport, audit=audit, redactor=redactor
    )
