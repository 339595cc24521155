"""The Codex server settings block: model provider, model, sandbox, approvals, timeouts."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, ValidationError, model_validator

from schemas import CodexServerConfig, ModelCatalogEntry, ModelProvider
from schemas.codex import REPLAY_MODEL, ApprovalPolicyName, SandboxMode

from ._docs import DOCS_URL, HIDE_INPUT, describe_errors


class CodexServerSettings(Block):
    """How each ``codex mcp-server`` is configured: provider, model, sandbox, approvals.

    Attributes:
        provider_base_url: Responses API base URL of the model provider.
        provider_env_key: Environment variable carrying the provider's API key.
        model: Model slug.
        sandbox: Default sandbox of a codex call.
        approval_policy: Default approval policy of a codex call.
    """

    model_config = HIDE_INPUT

    _block_type_name = "Orchestrator Codex Server Settings"
    _block_type_slug = "orchestrator-codex-server-settings"
    _documentation_url = HttpUrl(f"{DOCS_URL}#codex-server-settings-block")
    _description = (
        "Settings of the codex MCP servers the agents run in: model provider and model, "
        "sandbox mode, approval policy and timeouts. The provider's API key is not stored "
        "here; it is read from Vault at run time and handed to the server's environment."
    )
    _code_example = """
    ```python
    from blocks import CodexServerSettings

    codex_server_settings = CodexServerSettings.load("BLOCK_NAME")
    config = codex_server_settings.get_config()
    ```
    """

    provider_name: str = Field(
        default="replay",
        title="Provider name",
        description="Display name of the model provider, e.g. 'replay' or 'openai'.",
    )
    provider_base_url: str = Field(
        title="Provider base URL",
        description="Base URL of the provider's Responses API; codex POSTs to "
        "'{base_url}/responses'.",
    )
    provider_wire_api: Literal["responses"] = Field(
        default="responses",
        title="Wire API",
        description="The wire protocol codex speaks to the provider.",
    )
    provider_env_key: str | None = Field(
        default=None,
        title="API key variable",
        description="Environment variable of the server process that carries the API key "
        "(e.g. OPENAI_API_KEY); its value comes from Vault at run time, never from here.",
    )
    request_max_retries: int = Field(
        default=0,
        title="Request retries",
        description="Retries of a failed model request.",
    )
    stream_max_retries: int = Field(
        default=0,
        title="Stream retries",
        description="Retries of a model stream that broke off.",
    )
    model: str = Field(
        default=REPLAY_MODEL,
        title="Model",
        description="Model slug, e.g. 'replay' for the recorded-turns provider.",
    )
    sandbox: SandboxMode = Field(
        default="workspace-write",
        title="Sandbox mode",
        description="Default sandbox of a codex call.",
    )
    approval_policy: ApprovalPolicyName = Field(
        default="on-request",
        title="Approval policy",
        description="Default approval policy of a codex call.",
    )
    call_timeout_seconds: float = Field(
        default=600,
        title="Call timeout (seconds)",
        description="Deadline of one codex or codex-reply call.",
    )
    startup_timeout_seconds: float = Field(
        default=30,
        title="Startup timeout (seconds)",
        description="Deadline to spawn and initialize the server.",
    )
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        default=None,
        title="Reasoning effort",
        description="Reasoning effort for reasoning models; the model's default when unset.",
    )
    codex_command: str | None = Field(
        default=None,
        title="codex executable",
        description="The codex executable; default: 'codex' next to the Python interpreter, "
        "else on PATH.",
    )
    model_catalog: list[ModelCatalogEntry] | None = Field(
        default=None,
        title="Model catalog",
        description="Metadata for model slugs codex does not know; when unset and the model "
        "is 'replay', the replay entry is used.",
    )

    @model_validator(mode="after")
    def _check_combination(self) -> CodexServerSettings:
        self.get_config()
        return self

    def get_config(self) -> CodexServerConfig:
        """The validated server configuration this block describes.

        Raises:
            ValueError: a field is out of range or the fields do not combine.
        """
        try:
            provider = ModelProvider(
                name=self.provider_name,
                base_url=self.provider_base_url,
                wire_api=self.provider_wire_api,
                env_key=self.provider_env_key,
                request_max_retries=self.request_max_retries,
                stream_max_retries=self.stream_max_retries,
            )
            return CodexServerConfig(
                provider=provider,
                model=self.model,
                sandbox=self.sandbox,
                approval_policy=self.approval_policy,
                call_timeout_seconds=self.call_timeout_seconds,
                startup_timeout_seconds=self.startup_timeout_seconds,
                reasoning_effort=self.reasoning_effort,
                codex_command=self.codex_command,
                model_catalog=self.model_catalog,
            )
        except ValidationError as exc:
            raise ValueError(f"invalid Codex server settings: {describe_errors(exc)}") from None

    @classmethod
    def from_config(cls, config: CodexServerConfig) -> CodexServerSettings:
        """A block holding ``config`` (e.g. to save the settings a test or demo uses)."""
        provider = config.provider
        return cls(
            provider_name=provider.name,
            provider_base_url=provider.base_url,
            provider_wire_api=provider.wire_api,
            provider_env_key=provider.env_key,
            request_max_retries=provider.request_max_retries,
            stream_max_retries=provider.stream_max_retries,
            model=config.model,
            sandbox=config.sandbox,
            approval_policy=config.approval_policy,
            call_timeout_seconds=config.call_timeout_seconds,
            startup_timeout_seconds=config.startup_timeout_seconds,
            reasoning_effort=config.reasoning_effort,
            codex_command=config.codex_command,
            model_catalog=config.model_catalog,
        )
