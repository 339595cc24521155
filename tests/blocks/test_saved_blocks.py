"""Blocks saved to a real Prefect API: they load back, work, and the database holds no secret."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from blocks import CodexCloudEndpoint, CodexServerSettings, VaultCredentials
from devstack.vault import DevVault
from orchestrator.credentials import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV
from orchestrator.redaction import Redactor
from tests.conftest import REPO_ROOT, PrefectApi, sample_manifest
from tests.helpers.canary import scan_paths_for

pytestmark = pytest.mark.integration


@pytest.fixture
def saved_blocks(prefect_api: PrefectApi, vault: DevVault) -> dict[str, str]:
    """Save one block of each type, the way an operator would; their names by slug."""
    VaultCredentials(address=vault.address, role_id=SecretStr(vault.approle("dev").role_id)).save(
        "vault-dev", overwrite=True
    )
    CodexServerSettings(
        provider_base_url="http://127.0.0.1:9/v1", provider_env_key="OPENAI_API_KEY"
    ).save("codex-dev", overwrite=True)
    CodexCloudEndpoint(base_url="http://127.0.0.1:9/api", workspace_id="ws-1").save(
        "cloud-dev", overwrite=True
    )
    return {"vault": "vault-dev", "codex": "codex-dev", "cloud": "cloud-dev"}


def test_loaded_blocks_open_a_broker_and_build_a_cloud_client(
    saved_blocks: dict[str, str],
    vault: DevVault,
    redactor: Redactor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DEFAULT_SECRET_ID_ENV, vault.approle("dev").secret_id.get_secret_value())
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"runId": "r-1"})

    credentials = VaultCredentials.load(saved_blocks["vault"])
    endpoint = CodexCloudEndpoint.load(saved_blocks["cloud"])
    config = CodexServerSettings.load(saved_blocks["codex"]).get_config()
    with credentials.open_broker("dev", redactor=redactor) as broker:
        model_env = broker.subprocess_env({config.provider.env_key or "": "openai_api_key"})
        with endpoint.get_client(broker, transport=httpx.MockTransport(handler)) as client:
            client.import_run(sample_manifest())

    assert model_env == {"OPENAI_API_KEY": vault.values("dev")["openai_api_key"]}
    assert seen[0].headers["authorization"] == f"Bearer {vault.values('dev')[CLOUD_TOKEN]}"


def test_the_prefect_database_holds_no_secret(
    saved_blocks: dict[str, str], prefect_api: PrefectApi, vault: DevVault
) -> None:
    secrets = {
        "root token": vault.root_token.get_secret_value(),
        "secret_id": vault.approle("dev").secret_id.get_secret_value(),
        **{f"value of {key}": value for key, value in vault.values("dev").items()},
    }
    places = [prefect_api.database.parent, prefect_api.home]
    # Block documents are stored encrypted, but their events carry plain fields, and
    # events are written in batches: wait until the address shows, so the scan below
    # sees everything the saves wrote.
    _wait_until_found(vault.address, places, timeout=15)

    hits = {name: scan_paths_for(secret, places) for name, secret in secrets.items()}

    assert hits == {name: [] for name in secrets}
    # The role_id (a SecretStr field) is not in the clear either.
    assert scan_paths_for(vault.approle("dev").role_id, places) == []


def _wait_until_found(text: str, places: list[Path], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not scan_paths_for(text, places):
        assert time.monotonic() < deadline, f"{text!r} never reached the Prefect database"
        time.sleep(0.1)


def test_prefect_block_register_finds_every_block(prefect_api: PrefectApi) -> None:
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api.url,
        "PREFECT_HOME": str(prefect_api.home),
        "PYTHONPATH": str(REPO_ROOT),
    }

    result = subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), "block", "register", "-m", "blocks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully registered 3 blocks" in result.stdout, result.stdout


def test_dev_vault_cli_saves_a_block_per_env(
    prefect_api: PrefectApi, tmp_path: Path, redactor: Redactor
) -> None:
    state_dir = tmp_path / "serve"
    env = {**os.environ, "PREFECT_API_URL": prefect_api.url, "PREFECT_HOME": str(prefect_api.home)}
    cli = [
        sys.executable,
        "-c",
        "import typer; from orchestrator.cli import _dev; app = typer.Typer(); "
        "_dev.register(app); app()",
        "dev",
    ]
    started = subprocess.run(
        [*cli, "vault", "--background", "--state-dir", str(state_dir), "--save-blocks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "saved block orchestrator-vault-credentials/vault-dev" in started.stdout
        secret_id = (state_dir / "approle-dev.env").read_text().strip().partition("=")[2]
        block = VaultCredentials.load("vault-dev")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(DEFAULT_SECRET_ID_ENV, secret_id)
            with block.open_broker("dev", redactor=redactor) as broker:
                assert broker.get(CLOUD_TOKEN).startswith("dev-cloud-dev-")
    finally:
        subprocess.run([*cli, "vault-stop", "--state-dir", str(state_dir)], timeout=30, check=True)
