"""VaultSettings refuses bad combinations and never echoes a value in its errors."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from orchestrator.credentials import VaultSettings

ADDRESS = "http://127.0.0.1:8200"


def test_defaults_name_the_documented_path() -> None:
    settings = VaultSettings(address=ADDRESS + "/", role_id=SecretStr("role"))

    assert settings.address == ADDRESS
    assert settings.kv_mount == "secret"
    assert settings.secret_path("prod") == "codex/orchestrator/prod"
    assert settings.auth_method == "approle"
    assert settings.secret_id_env == "ORCHESTRATOR_VAULT_SECRET_ID"
    assert {"VAULT_TOKEN", "ORCHESTRATOR_VAULT_SECRET_ID"} <= settings.auth_env_vars()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"auth_method": "approle"}, "needs a role_id"),
        ({"role_id": "r", "token": "t"}, "takes no token"),
        ({"auth_method": "token", "role_id": "r"}, "takes no role_id"),
        ({"auth_method": "token", "address": "ftp://vault"}, "http:// or https://"),
        ({"auth_method": "token", "address": "http://user:pw@vault"}, "credentials"),
        ({"auth_method": "token", "address": "http://vault?token=x"}, "query"),
        ({"auth_method": "token", "path_template": "codex/orchestrator"}, "placeholder"),
        ({"auth_method": "token", "path_template": "/codex/{env}"}, "relative"),
        ({"auth_method": "token", "path_template": "codex/{env}/{team}"}, "placeholder"),
        ({"auth_method": "token", "token_env": "NOT-A-NAME"}, "token_env"),
        ({"auth_method": "token", "timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_bad_combinations_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        VaultSettings.model_validate({"address": ADDRESS, **fields})

    assert "pw@" not in str(caught.value)
    assert "input_value" not in str(caught.value)


def test_secret_path_refuses_unsafe_envs() -> None:
    settings = VaultSettings(address=ADDRESS, auth_method="token")

    with pytest.raises(ValueError, match="safe id"):
        settings.secret_path("../prod")


def test_in_memory_secrets_stay_masked() -> None:
    settings = VaultSettings(
        address=ADDRESS, role_id=SecretStr("role-1234"), secret_id=SecretStr("sid-5678")
    )

    text = f"{settings!r} {settings.model_dump()} {settings.model_dump_json()}"

    assert "role-1234" not in text
    assert "sid-5678" not in text
