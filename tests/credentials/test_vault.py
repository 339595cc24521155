"""The broker against a real OpenBao dev server: logins, scoping, failures, token lifetime."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from devstack.vault import DevVault
from orchestrator.credentials import (
    CLOUD_TOKEN,
    OPENAI_API_KEY,
    CredentialCause,
    VaultSettings,
    open_broker,
)
from orchestrator.exceptions import CredentialError
from orchestrator.redaction import Redactor

pytestmark = pytest.mark.integration


def _token_count(vault: DevVault) -> int:
    """How many tokens the server holds (the root token included)."""
    return len(vault.admin_client().auth.token.list_accessors()["data"]["keys"])


def _secrets_of(vault: DevVault, *envs: str) -> list[str]:
    found = [vault.root_token.get_secret_value()]
    for env in envs:
        found += [vault.approle(env).secret_id.get_secret_value(), *vault.values(env).values()]
    return found


def _assert_no_secret_in(error: CredentialError, vault: DevVault, *envs: str) -> None:
    text = f"{error} {error!r} {error.__dict__} {error.__cause__!r}"
    assert not any(secret in text for secret in _secrets_of(vault, *envs))
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_approle_login_reads_the_env_secret_into_memory(
    vault: DevVault, redactor: Redactor, isolated_home: Path
) -> None:
    before = _token_count(vault)

    with open_broker(vault.settings("dev"), "dev", redactor=redactor) as broker:
        assert _token_count(vault) == before + 1
        assert broker.get(CLOUD_TOKEN) == vault.values("dev")[CLOUD_TOKEN]
        assert broker.keys == {CLOUD_TOKEN, OPENAI_API_KEY}
        assert broker.source == "vault:secret/codex/orchestrator/dev"
        assert broker.owns_token

    assert _token_count(vault) == before  # the AppRole token was revoked on close
    assert list(isolated_home.iterdir()) == []  # no ~/.vault-token, nothing else


def test_every_value_and_credential_is_registered_before_open_returns(
    vault: DevVault, redactor: Redactor
) -> None:
    with open_broker(vault.settings("dev"), "dev", redactor=redactor):
        secret_id = vault.approle("dev").secret_id.get_secret_value()
        for secret in [secret_id, *vault.values("dev").values()]:
            assert redactor.redact(f"<{secret}>") == "<***>"
        # values + secret_id + the token the login created
        assert redactor.secret_count == len(vault.values("dev")) + 2


def test_secret_id_is_read_from_the_environment_at_run_time(
    vault: DevVault, redactor: Redactor
) -> None:
    login = vault.approle("prod")
    settings = VaultSettings(
        address=vault.address, role_id=SecretStr(login.role_id), secret_id_env="PROD_SECRET_ID"
    )

    environ = {"PROD_SECRET_ID": login.secret_id.get_secret_value()}
    with open_broker(settings, "prod", redactor=redactor, environ=environ) as broker:
        assert broker.get(OPENAI_API_KEY) == vault.values("prod")[OPENAI_API_KEY]


def test_token_login_reads_and_never_revokes_a_token_it_was_given(
    vault: DevVault, redactor: Redactor, isolated_home: Path
) -> None:
    settings = VaultSettings(address=vault.address, auth_method="token")
    environ = {"VAULT_TOKEN": vault.root_token.get_secret_value()}

    with open_broker(settings, "prod", redactor=redactor, environ=environ) as broker:
        assert broker.get(CLOUD_TOKEN) == vault.values("prod")[CLOUD_TOKEN]
        assert not broker.owns_token

    assert vault.admin_client().auth.token.lookup_self()["data"]["policies"] == ["root"]
    assert redactor.redact(vault.root_token.get_secret_value()) == "***"
    assert list(isolated_home.iterdir()) == []


@pytest.mark.parametrize(("role", "target"), [("dev", "prod"), ("prod", "dev")])
def test_one_envs_role_cannot_read_another_env(
    vault: DevVault, redactor: Redactor, role: str, target: str
) -> None:
    before = _token_count(vault)

    with pytest.raises(CredentialError) as caught:
        open_broker(vault.settings(role), target, redactor=redactor)

    assert caught.value.cause == CredentialCause.FORBIDDEN
    assert caught.value.env == target
    assert f"secret/codex/orchestrator/{target}" in str(caught.value)
    _assert_no_secret_in(caught.value, vault, "dev", "prod")
    assert _token_count(vault) == before  # the failed run's token was revoked too


def test_missing_path(vault: DevVault, redactor: Redactor) -> None:
    with pytest.raises(CredentialError) as caught:
        open_broker(vault.settings("dev", auth_method="token"), "staging", redactor=redactor)

    assert caught.value.cause == "missing_path"
    assert "secret/codex/orchestrator/staging" in str(caught.value)


def test_wrong_secret_id_is_an_auth_failure(vault: DevVault, redactor: Redactor) -> None:
    settings = vault.settings("dev").model_copy(update={"secret_id": SecretStr("not-the-id")})

    with pytest.raises(CredentialError) as caught:
        open_broker(settings, "dev", redactor=redactor)

    assert caught.value.cause == "auth_failed"
    assert "not-the-id" not in str(caught.value)
    _assert_no_secret_in(caught.value, vault, "dev")


def test_missing_secret_id_names_the_variable(vault: DevVault, redactor: Redactor) -> None:
    settings = VaultSettings(address=vault.address, role_id=SecretStr(vault.approle("dev").role_id))

    with pytest.raises(CredentialError) as caught:
        open_broker(settings, "dev", redactor=redactor, environ={})

    assert caught.value.cause == "auth_failed"
    assert "ORCHESTRATOR_VAULT_SECRET_ID" in str(caught.value)


def test_bad_token_is_an_auth_failure(vault: DevVault, redactor: Redactor) -> None:
    settings = VaultSettings(address=vault.address, auth_method="token", token=SecretStr("bogus1"))

    with pytest.raises(CredentialError) as caught:
        open_broker(settings, "dev", redactor=redactor)

    assert caught.value.cause == "auth_failed"
    assert "bogus1" not in str(caught.value)


def test_server_stopped_before_a_run_is_a_clear_failure(
    private_vault: DevVault, redactor: Redactor
) -> None:
    settings = private_vault.settings("dev")
    secrets = _secrets_of(private_vault, "dev")
    private_vault.stop()

    with pytest.raises(CredentialError) as caught:
        open_broker(settings, "dev", redactor=redactor)

    assert caught.value.cause == CredentialCause.DOWN
    assert private_vault.address in str(caught.value)
    assert "unreachable" in str(caught.value)
    assert not any(secret in str(caught.value) for secret in secrets)
    assert caught.value.__cause__ is None
    assert redactor.secret_count == 1  # only the secret_id, registered before the attempt


def test_sealed_server_is_a_clear_failure(private_vault: DevVault, redactor: Redactor) -> None:
    private_vault.admin_client().sys.seal()

    with pytest.raises(CredentialError) as caught:
        open_broker(private_vault.settings("dev"), "dev", redactor=redactor)

    assert caught.value.cause == CredentialCause.SEALED
    assert "sealed" in str(caught.value)
    _assert_no_secret_in(caught.value, private_vault, "dev")


def test_server_lost_during_a_run_does_not_break_close(
    private_vault: DevVault, redactor: Redactor, caplog: pytest.LogCaptureFixture
) -> None:
    broker = open_broker(private_vault.settings("dev"), "dev", redactor=redactor)
    secrets = _secrets_of(private_vault, "dev")
    private_vault.stop()

    with caplog.at_level(logging.WARNING, logger="orchestrator.credentials"):
        broker.close()

    assert "could not revoke the Vault token" in caplog.text
    assert not any(secret in caplog.text for secret in secrets)


def test_token_is_renewed_while_open_beyond_its_first_ttl(
    redactor: Redactor, caplog: pytest.LogCaptureFixture
) -> None:
    renewed: list[float] = []
    enough = threading.Event()

    def on_renew(ttl_seconds: float) -> None:
        renewed.append(ttl_seconds)
        if len(renewed) >= 5:
            enough.set()

    with DevVault(token_ttl_seconds=1, token_max_ttl_seconds=60) as server:
        settings = server.settings("dev", renew_interval_seconds=0.05, renew_threshold_seconds=0.8)
        broker = open_broker(settings, "dev", redactor=redactor, on_renew=on_renew)
        with caplog.at_level(logging.WARNING, logger="orchestrator.credentials"):
            assert enough.wait(timeout=10)  # five renewals: well past the first 1 s TTL
            assert broker.renew_error is None
            broker.close()  # revoking needs the token to be still alive

    assert renewed[0] == 1.0
    assert caplog.text == ""


def test_no_fallback_to_vault_token_or_the_token_file(
    vault: DevVault, redactor: Redactor, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = vault.root_token.get_secret_value()
    (isolated_home / ".vault-token").write_text(root)
    monkeypatch.setenv("VAULT_TOKEN", root)
    settings = VaultSettings(address=vault.address, auth_method="token", token_env="RUN_TOKEN")

    with pytest.raises(CredentialError) as caught:
        open_broker(settings, "dev", redactor=redactor)

    assert caught.value.cause == "auth_failed"
    assert "RUN_TOKEN" in str(caught.value)
