"""The Codex server settings block: backend, model provider, model, sandbox, approvals,
timeouts.

Its fields are those of :class:`~schemas.CodexServerConfig`, derived from it (see
``blocks/_fields.py``): the provider's fields flattened to ``provider_*`` (its two retry
counts keep the names they were released under), every other field under its own name.
"""

from __future__ import annotations

from pydantic import HttpUrl

from schemas import CodexServerConfig

from ._docs import DOCS_URL, HIDE_INPUT
from ._fields import FieldLayout

CODEX_FIELDS = FieldLayout.of(
    CodexServerConfig,
    flatten={"provider": "provider_"},
    unprefixed={"request_max_retries", "stream_max_retries"},
)
"""The server config flat: ``provider.base_url`` is the block's ``provider_base_url``."""


class CodexServerSettings(CODEX_FIELDS.block_base("CodexServerSettingsFields")):  # type: ignore[misc]  # fields built at import (blocks/_fields.py)
    """How each codex server is configured: backend, provider, model, sandbox, approvals.

    Attributes:
        backend: The agent backend: 'mcp' (codex mcp-server) or 'app-server'.
        backend_by_env: The backend of runs in a given environment, over ``backend``.
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
        "Settings of the codex servers the agents run in: the agent backend ('mcp': codex "
        "mcp-server, or 'app-server': codex app-server), model provider and model, "
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

    def get_config(self) -> CodexServerConfig:
        """The validated server configuration this block describes.

        Raises:
            ValueError: a field is out of range or the fields do not combine.
        """
        return CODEX_FIELDS.to_model(self)

    @classmethod
    def from_config(cls, config: CodexServerConfig) -> CodexServerSettings:
        """A block holding ``config`` (e.g. to save the settings a test or demo uses)."""
        return cls(**CODEX_FIELDS.from_model(config))
