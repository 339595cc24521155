"""The blocks: configuration only, validated when built, turned into core objects."""

from __future__ import annotations

import json
from types import ModuleType

import httpx
import pytest
from pydantic import SecretStr, ValidationError

import blocks
from blocks import CloudConnection, CodexCloudEndpoint, CodexServerSettings, VaultCredentials
from orchestrator.credentials import CLOUD_TOKEN, CredentialBroker
from orchestrator.exceptions import CredentialError
from orchestrator.redaction import Redactor
from orchestrator.runs_api import RunsApiClient
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


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"provider_base_url": "api.example"}, "http"),
        ({"provider_base_url": "http://x", "provider_env_key": "lower"}, "env_key"),
        ({"provider_base_url": "http://x", "call_timeout_seconds": 0}, "call_timeout_seconds"),
        ({"provider_base_url": "http://x", "request_max_retries": 99}, "request_max_retries"),
        ({"provider_base_url": "http://x", "sandbox": "anything"}, "sandbox"),
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
