"""The in-memory broker: lookups, child environments, redaction, and what it refuses."""

from __future__ import annotations

import copy
import pickle

import pytest

from orchestrator.credentials import (
    CLOUD_TOKEN,
    OPENAI_API_KEY,
    CredentialBroker,
    CredentialCause,
)
from orchestrator.exceptions import CredentialError
from orchestrator.redaction import Redactor

VALUES = {CLOUD_TOKEN: "cloud-token-value-1234", OPENAI_API_KEY: "model-key-value-5678"}


@pytest.fixture
def broker(redactor: Redactor) -> CredentialBroker:
    return CredentialBroker.from_values("dev", VALUES, redactor=redactor)


def test_values_are_registered_with_the_redactor_before_use(
    broker: CredentialBroker, redactor: Redactor
) -> None:
    text = " ".join(VALUES.values())

    assert redactor.redact(text) == "*** ***"
    assert broker.get(CLOUD_TOKEN) == VALUES[CLOUD_TOKEN]
    assert broker.keys == frozenset(VALUES)
    assert CLOUD_TOKEN in broker
    assert broker.source == "memory"
    assert not broker.owns_token


def test_missing_key_names_the_key_and_no_value(broker: CredentialBroker) -> None:
    with pytest.raises(CredentialError) as caught:
        broker.get("github_token")

    assert caught.value.cause == CredentialCause.MISSING_KEY
    assert caught.value.cause == "missing_key"  # a plain string too (StrEnum)
    assert caught.value.env == "dev"
    assert "github_token" in str(caught.value)
    assert not any(value in str(caught.value) for value in VALUES.values())


def test_subprocess_env_maps_variables_to_keys(broker: CredentialBroker) -> None:
    env = broker.subprocess_env({"OPENAI_API_KEY": OPENAI_API_KEY})

    assert env == {"OPENAI_API_KEY": VALUES[OPENAI_API_KEY]}


def test_subprocess_env_drops_vault_credentials_from_the_base(broker: CredentialBroker) -> None:
    base = {
        "PATH": "/usr/bin",
        "VAULT_TOKEN": "root-token-1234",
        "ORCHESTRATOR_VAULT_SECRET_ID": "secret-id-5678",
    }

    env = broker.subprocess_env({"RUNS_TOKEN": CLOUD_TOKEN}, base=base)

    assert env == {"PATH": "/usr/bin", "RUNS_TOKEN": VALUES[CLOUD_TOKEN]}


def test_subprocess_env_refuses_a_bad_variable_name(broker: CredentialBroker) -> None:
    with pytest.raises(ValueError, match="environment variable"):
        broker.subprocess_env({"BAD=NAME": CLOUD_TOKEN})


def test_subprocess_env_with_a_missing_key(broker: CredentialBroker) -> None:
    with pytest.raises(CredentialError) as caught:
        broker.subprocess_env({"X": "nope"})

    assert caught.value.cause == "missing_key"


def test_closed_broker_forgets_its_values(broker: CredentialBroker) -> None:
    with broker:
        pass

    with pytest.raises(CredentialError) as caught:
        broker.get(CLOUD_TOKEN)
    assert caught.value.cause == "closed"
    assert "closed" in repr(broker)
    broker.close()  # idempotent


def test_repr_shows_keys_never_values(broker: CredentialBroker) -> None:
    text = repr(broker)

    assert "cloud_token" in text
    assert not any(value in text for value in VALUES.values())


def test_broker_cannot_be_pickled_or_copied(broker: CredentialBroker) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(broker)
    with pytest.raises(TypeError):
        copy.copy(broker)


@pytest.mark.parametrize("value", ["abc", "", 12345678, None, {"nested": "value"}])
def test_values_that_cannot_be_redacted_are_refused(value: object, redactor: Redactor) -> None:
    with pytest.raises(CredentialError) as caught:
        CredentialBroker.from_values("dev", {"k": value}, redactor=redactor)  # type: ignore[dict-item]

    assert caught.value.cause == "invalid_secret"
    assert "'k'" in str(caught.value)


@pytest.mark.parametrize("env", ["../prod", "", "a/b", ".hidden"])
def test_unsafe_env_names_are_refused(env: str, redactor: Redactor) -> None:
    with pytest.raises(ValueError, match="safe id"):
        CredentialBroker.from_values(env, VALUES, redactor=redactor)


def test_credential_error_survives_pickling() -> None:
    error = CredentialError("Vault is sealed", env="prod", cause=CredentialCause.SEALED)

    restored = pickle.loads(pickle.dumps(error))

    assert (restored.cause, restored.env, str(restored)) == ("sealed", "prod", "Vault is sealed")
