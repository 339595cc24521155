"""A real OpenBao dev server for the credential tests, started once and stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.vault import DevVault


@pytest.fixture
def private_vault() -> Iterator[DevVault]:
    """A server of this test's own, for tests that seal or stop it."""
    with DevVault(envs=("dev",)) as server:
        yield server


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, and no Vault variables, so a stray ``~/.vault-token`` would show."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("VAULT_TOKEN", "VAULT_ADDR", "BAO_TOKEN", "ORCHESTRATOR_VAULT_SECRET_ID"):
        monkeypatch.delenv(name, raising=False)
    return home
