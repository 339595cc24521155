"""The Prefect client retry bound: names Prefect 3.9.1 reads, values it accepts."""

from __future__ import annotations

import pytest

from orchestrator.prefect_retries import PREFECT_CLIENT_RETRY_DEFAULTS, prefect_client_environ


def test_prefect_reads_every_default_under_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings.models.client import ClientSettings

    for name, value in PREFECT_CLIENT_RETRY_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    settings = ClientSettings()

    assert settings.max_retries == 8
    assert settings.retry_jitter_factor == 0.5
    assert settings.retry_extra_codes == {504}


def test_what_the_user_sets_wins_and_nothing_else_is_passed() -> None:
    environ = {
        "PREFECT_CLIENT_MAX_RETRIES": "3",
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
        "PREFECT_API_KEY": "not-a-client-setting",
        "HOME": "/root",
    }

    assert prefect_client_environ(environ) == {
        "PREFECT_CLIENT_MAX_RETRIES": "3",
        "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0.5",
        "PREFECT_CLIENT_RETRY_EXTRA_CODES": "504",
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
    }
