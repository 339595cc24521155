"""The blocks: configuration only, validated when built, turned into core objects."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import httpx
import pytest
from prefect.blocks.core import Block
from pydantic import SecretStr, ValidationError

import blocks
from blocks import CloudConnection, CodexCloudEndpoint, CodexServerSettings, VaultCredentials
from blocks._fields import FieldLayout
from blocks.cloud import CLOUD_FIELDS
from blocks.codex import CODEX_FIELDS
from blocks.vault import VAULT_FIELDS
from orchestrator.cloud_settings import CloudEndpoint
from orchestrator.credentials import CLOUD_TOKEN, CredentialBroker
from orchestrator.exceptions import CredentialError
from orchestrator.redaction import Redactor
from orchestrator.runs_api import RunsApiClient
from orchestrator.vault_settings import VaultSettings
from schemas import CodexServerConfig, ModelProvider
from tests.conftest import sample_manifest

ADDRESS = "http://127.0.0.1:8200"
TOKEN = "runs-api-token-0123456789"


def test_exports_are_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(blocks).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert blocks.__all__ == sorted(blocks.__all__)
    assert set(blocks.__all__) == public


def test_slugs_are_stable() -> None:
    types = (VaultCredentials, CodexServerSettings, CodexCloudEndpoint)

    slugs = [block.get_block_type_slug() for block in types]

    assert slugs == [
        "orchestrator-vault-credentials",
        "orchestrator-codex-server-settings",
        "orchestrator-codex-cloud-endpoint",
    ]


# --- Vault credentials ---------------------------------------------------------------


def test_vault_block_has_no_field_for_a_token_or_secret_id() -> None:
    fields = set(VaultCredentials.model_fields)

    assert {"token", "secret_id"}.isdisjoint(fields)
    assert {"token_env", "secret_id_env", "role_id"} <= fields
    assert VaultCredentials.model_fields["role_id"].annotation == SecretStr | None


def test_vault_block_becomes_settings() -> None:
    block = VaultCredentials(
        address=ADDRESS, role_id=SecretStr("role-1"), namespace="team", kv_mount="kv"
    )

    settings = block.get_settings()

    assert settings.address == ADDRESS
    assert settings.role_id is not None and settings.role_id.get_secret_value() == "role-1"
    assert (settings.namespace, settings.kv_mount, settings.secret_id) == ("team", "kv", None)
    assert settings.secret_path("dev") == "codex/orchestrator/dev"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": ADDRESS}, "needs a role_id"),
        ({"address": ADDRESS, "auth_method": "token", "role_id": "r"}, "takes no role_id"),
        ({"address": "vault:8200", "auth_method": "token"}, "address"),
        ({"address": "http://u:secretpw@v", "auth_method": "token"}, "credentials"),
        ({"address": ADDRESS, "auth_method": "token", "path_template": "x"}, "placeholder"),
        ({"address": ADDRESS, "auth_method": "token", "secret_id_env": "a b"}, "secret_id_env"),
    ],
)
def test_vault_block_refuses_bad_combinations(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        VaultCredentials(**fields)

    assert "secretpw" not in str(caught.value)


def test_vault_block_token_comes_from_the_environment_at_run_time(
    monkeypatch: pytest.MonkeyPatch, redactor: Redactor
) -> None:
    monkeypatch.delenv("SOME_VAULT_TOKEN", raising=False)
    block = VaultCredentials(address=ADDRESS, auth_method="token", token_env="SOME_VAULT_TOKEN")

    with pytest.raises(CredentialError, match="SOME_VAULT_TOKEN") as caught:
        block.open_broker("dev", redactor=redactor)

    assert caught.value.cause == "auth_failed"


# --- Codex server settings -----------------------------------------------------------


def test_codex_block_round_trips_the_server_config() -> None:
    config = CodexServerConfig(
        provider=ModelProvider(
            name="openai", base_url="https://api.example/v1", env_key="OPENAI_API_KEY"
        ),
        model="gpt-x",
        sandbox="read-only",
        approval_policy="never",
        call_timeout_seconds=120,
        startup_timeout_seconds=10,
    )

    block = CodexServerSettings.from_config(config)

    assert block.get_config() == config
    assert block.provider_env_key == "OPENAI_API_KEY"


def test_codex_block_defaults_to_the_replay_model() -> None:
    config = CodexServerSettings(provider_base_url="http://127.0.0.1:9/v1").get_config()

    assert (config.model, config.provider.name) == ("replay", "replay")
    assert (config.sandbox, config.approval_policy) == ("workspace-write", "on-request")
    assert config.backend == "mcp"


def test_codex_block_chooses_the_backend_and_an_environment_overrides_it() -> None:
    block = CodexServerSettings(
        provider_base_url="http://127.0.0.1:9/v1",
        backend="app-server",
        backend_by_env={"prod": "mcp"},
    )
    config = block.get_config()

    assert config.backend == "app-server"
    assert config.for_env("dev").backend == "app-server"
    assert config.for_env("prod").backend == "mcp"
    assert CodexServerSettings.from_config(config).get_config() == config


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"provider_base_url": "api.example"}, "http"),
        ({"provider_base_url": "http://x", "provider_env_key": "lower"}, "env_key"),
        ({"provider_base_url": "http://x", "call_timeout_seconds": 0}, "call_timeout_seconds"),
        ({"provider_base_url": "http://x", "request_max_retries": 99}, "request_max_retries"),
        ({"provider_base_url": "http://x", "sandbox": "anything"}, "sandbox"),
        ({"provider_base_url": "http://x", "backend": "mcp-server"}, "backend"),
        ({"provider_base_url": "http://x", "backend_by_env": {"prod": "sdk"}}, "backend_by_env"),
    ],
)
def test_codex_block_refuses_bad_settings(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CodexServerSettings(**fields)


# --- Codex Cloud endpoint ------------------------------------------------------------


@pytest.fixture
def broker(redactor: Redactor) -> CredentialBroker:
    return CredentialBroker.from_values("dev", {CLOUD_TOKEN: TOKEN}, redactor=redactor)


def test_cloud_connection_takes_the_token_from_the_broker(broker: CredentialBroker) -> None:
    endpoint = CodexCloudEndpoint(base_url="http://127.0.0.1:9/api/", workspace_id="ws-1")

    connection = endpoint.connection(broker)

    assert connection == CloudConnection("http://127.0.0.1:9/api", "ws-1", TOKEN)
    assert TOKEN not in repr(connection)


def test_cloud_connection_with_a_missing_token_key(broker: CredentialBroker) -> None:
    endpoint = CodexCloudEndpoint(base_url="http://x/api", workspace_id="w", token_key="other")

    with pytest.raises(CredentialError) as caught:
        endpoint.connection(broker)

    assert caught.value.cause == "missing_key"
    assert "other" in str(caught.value)


def test_cloud_client_sends_the_bearer_token(broker: CredentialBroker, workspace: object) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "cloud-run-1"})

    endpoint = CodexCloudEndpoint(base_url="http://127.0.0.1:9/api", workspace_id="ws-1")
    with endpoint.get_client(broker, transport=httpx.MockTransport(handler)) as client:
        assert isinstance(client, RunsApiClient)
        result = client.import_run(sample_manifest())

    assert result.cloud_run_id == "cloud-run-1"
    assert seen[0].url.path == "/api/workspaces/ws-1/runs/import"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in json.dumps(json.loads(seen[0].content))


@pytest.mark.parametrize(
    "fields",
    [
        {"base_url": "ftp://x", "workspace_id": "w"},
        {"base_url": "http://user:pw@x", "workspace_id": "w"},
        {"base_url": "http://x", "workspace_id": "../w"},
        {"base_url": "http://x", "workspace_id": "w", "max_attempts": 0},
    ],
)
def test_cloud_block_refuses_bad_fields(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CodexCloudEndpoint(**fields)


# --- fields derived from the core models ----------------------------------------------

STORED_FIELDS = {
    VaultCredentials: [
        "address",
        "auth_method",
        "role_id",
        "secret_id_env",
        "token_env",
        "approle_mount",
        "namespace",
        "kv_mount",
        "path_template",
        "timeout_seconds",
        "verify_tls",
        "ca_cert_path",
        "renew_interval_seconds",
        "renew_threshold_seconds",
    ],
    CodexServerSettings: [
        "backend",
        "backend_by_env",
        "provider_name",
        "provider_base_url",
        "provider_wire_api",
        "provider_env_key",
        "request_max_retries",
        "stream_max_retries",
        "model",
        "sandbox",
        "approval_policy",
        "call_timeout_seconds",
        "startup_timeout_seconds",
        "reasoning_effort",
        "codex_command",
        "model_catalog",
    ],
    CodexCloudEndpoint: [
        "base_url",
        "workspace_id",
        "token_key",
        "timeout_seconds",
        "max_attempts",
    ],
}
"""The field names are the stored schema of every saved block document: never renamed."""


@pytest.mark.parametrize("block", list(STORED_FIELDS), ids=lambda b: b.__name__)
def test_block_field_names_are_the_stored_schema(block: type[Block]) -> None:
    assert list(block.model_fields) == STORED_FIELDS[block]


@pytest.mark.parametrize(
    ("layout", "block"),
    [
        (VAULT_FIELDS, VaultCredentials),
        (CODEX_FIELDS, CodexServerSettings),
        (CLOUD_FIELDS, CodexCloudEndpoint),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_block_fields_are_the_core_models_fields(
    layout: FieldLayout[Any], block: type[Block]
) -> None:
    """Type, default, title and description come from the core model, not a copy."""
    for name, core in layout.field_infos().items():
        field = block.model_fields[name]
        assert (field.annotation, field.title, field.description) == (
            core.annotation,
            core.title,
            core.description,
        ), name
        assert field.get_default(call_default_factory=True) == core.get_default(
            call_default_factory=True
        ), name
        assert field.title and field.description, name


def test_the_codex_block_covers_every_field_of_the_server_config() -> None:
    """A field the config gains reaches the block: nothing of it is left out."""
    paths = set(CODEX_FIELDS.paths.values())
    top = {(name,) for name in CodexServerConfig.model_fields if name != "provider"}
    provider = {("provider", name) for name in ModelProvider.model_fields}
    assert paths == top | provider


def test_a_document_saved_by_an_earlier_version_still_loads() -> None:
    """The data of a CodexServerSettings document as the hand-written block stored it."""
    saved = {
        "provider_name": "openai",
        "provider_base_url": "https://api.example/v1",
        "provider_wire_api": "responses",
        "provider_env_key": "OPENAI_API_KEY",
        "request_max_retries": 2,
        "stream_max_retries": 1,
        "model": "gpt-x",
        "sandbox": "read-only",
        "approval_policy": "never",
        "call_timeout_seconds": 120.0,
        "startup_timeout_seconds": 10.0,
        "reasoning_effort": "low",
        "codex_command": None,
        "model_catalog": None,
    }
    config = CodexServerSettings.model_validate(saved).get_config()
    assert (config.provider.request_max_retries, config.reasoning_effort) == (2, "low")
    assert config.backend == "mcp"  # saved before there was a choice: runs as it did
    assert CODEX_FIELDS.from_model(config) == {**saved, "backend": "mcp", "backend_by_env": {}}


def test_vault_block_round_trips_the_settings_without_their_in_memory_secrets() -> None:
    settings = VaultSettings(
        address=ADDRESS,
        role_id=SecretStr("role-1"),
        secret_id=SecretStr("secret-id-in-memory"),
        kv_mount="kv",
    )
    block = VaultCredentials.from_settings(settings)
    assert block.get_settings() == settings.model_copy(update={"secret_id": None})
    assert "secret-id-in-memory" not in block.model_dump_json()


def test_errors_name_the_blocks_own_fields_and_no_value() -> None:
    with pytest.raises(ValidationError) as caught:
        CodexServerSettings(provider_base_url="api.example/secretpw")
    assert "provider_base_url: base_url must start with http" in str(caught.value)
    assert "secretpw" not in str(caught.value)


def test_the_cloud_block_becomes_the_core_endpoint() -> None:
    endpoint = CodexCloudEndpoint(base_url="http://x/api/", workspace_id="w", max_attempts=5)
    assert endpoint.get_endpoint() == CloudEndpoint(
        base_url="http://x/api", workspace_id="w", max_attempts=5
    )
    again = CodexCloudEndpoint.from_endpoint(endpoint.get_endpoint())
    assert again.get_endpoint() == endpoint.get_endpoint()
