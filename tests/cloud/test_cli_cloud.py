"""``orchestrator sync`` and ``orchestrator cloud serve``, on an app that registers only them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from pydantic import SecretStr
from typer.testing import CliRunner

from devstack import ServerProcess
from devstack.runs_api import spawn_server
from devstack.vault import DevVault
from orchestrator import CredentialError, InvalidInputError, OrchestratorError, Workspace
from orchestrator.cli import _cloud
from orchestrator.vault_settings import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV
from schemas import RunManifest, SyncState
from tests.conftest import PrefectApi
from tests.helpers.canary import scan_cmdlines_for, scan_paths_for

from .conftest import CloudServer
from .helpers import create_run, make_manifest

pytestmark = pytest.mark.integration


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    _cloud.register(app)
    return app


def test_sync_one_run_by_id(
    app: typer.Typer,
    cloud_env: dict[str, str],
    workspace: Workspace,
    cloud: CloudServer,
    cloud_workspace_id: str,
) -> None:
    run = create_run(workspace)
    result = CliRunner().invoke(app, ["sync", run.run_id], env=cloud_env)
    assert result.exit_code == 0, result.output
    assert "1 synced, 0 failed" in result.output and run.run_id in result.output
    manifest = workspace.store.read(run.task_id, run.run_id)
    assert manifest.sync is not None and manifest.sync.state is SyncState.SYNCED
    assert len(cloud.runs(cloud_workspace_id)) == 1
    assert cloud.token not in result.output


def test_a_failed_sync_is_a_failure(
    app: typer.Typer, cloud_env: dict[str, str], workspace: Workspace
) -> None:
    run = create_run(workspace)
    result = CliRunner().invoke(
        app,
        ["sync", f"{run.task_id}/{run.run_id}"],
        env={**cloud_env, "ORCHESTRATOR_CLOUD_TOKEN": "x" * 20},
    )
    assert isinstance(result.exception, OrchestratorError)
    assert "HTTP 401" in result.output and "sync --pending" in str(result.exception)


@pytest.mark.parametrize("args", [["sync"], ["sync", "some-run", "--pending"]])
def test_sync_needs_a_run_or_pending(
    app: typer.Typer, cloud_env: dict[str, str], args: list[str]
) -> None:
    result = CliRunner().invoke(app, args, env=cloud_env)
    assert isinstance(result.exception, InvalidInputError)


def test_half_of_the_endpoint_in_the_environment_is_bad_input(
    app: typer.Typer, cloud_env: dict[str, str]
) -> None:
    env = {**cloud_env, "ORCHESTRATOR_CLOUD_WORKSPACE": None}
    result = CliRunner().invoke(app, ["sync", "--pending"], env=env)
    assert isinstance(result.exception, InvalidInputError)
    assert "ORCHESTRATOR_CLOUD_WORKSPACE is not set" in str(result.exception)


def test_cloud_serve_without_a_token_is_bad_input(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_CLOUD_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["cloud", "serve", "--db", str(tmp_path / "db.sqlite3")])
    assert isinstance(result.exception, InvalidInputError)
    assert "ORCHESTRATOR_CLOUD_TOKEN" in str(result.exception)


SERVE = """
import typer
from orchestrator.cli import _cloud
app = typer.Typer()
_cloud.register(app)
app()
"""


def test_cloud_serve_listens_with_the_token_from_the_environment(tmp_path: Path) -> None:
    token = "serve-canary-0123456789abcdef"
    command = [sys.executable, "-c", SERVE, "cloud", "serve", "--port", "0"]
    command += ["--db", str(tmp_path / "db.sqlite3"), "--token-env", "SERVE_TEST_TOKEN"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "SERVE_TEST_TOKEN": token, "COLUMNS": "200"},
    )
    try:
        line = _first_line(process, timeout=30)
        assert line.startswith("Runs API listening on http://127.0.0.1:")
        url = line.split()[4]
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        headers = {"authorization": f"Bearer {token}"}
        assert (
            httpx.get(f"{url}/workspaces/ws/runs", headers=headers, timeout=5).json()["total"] == 0
        )
        assert not scan_cmdlines_for(token)
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def _first_line(process: subprocess.Popen[str], *, timeout: float) -> str:
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        lines.append(process.stdout.readline())
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout), "the server printed nothing"
    return lines[0]


def test_sync_pending_for_one_env_leaves_other_envs_alone(
    app: typer.Typer,
    cloud_env: dict[str, str],
    workspace: Workspace,
    cloud: CloudServer,
    cloud_workspace_id: str,
) -> None:
    dev, prod = runs_of_dev_and_prod(workspace)

    result = CliRunner().invoke(app, ["sync", "--pending", "--env", "dev"], env=cloud_env)

    assert result.exit_code == 0, result.output
    assert "1 synced, 0 failed, 0 not tried, 1 of other environments left alone" in result.output
    assert [r["summary"]["runId"] for r in cloud.runs(cloud_workspace_id)] == [dev.run_id]
    assert workspace.store.read(prod.task_id, prod.run_id).sync is None


def test_env_goes_with_pending(app: typer.Typer, cloud_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["sync", "some-run", "--env", "dev"], env=cloud_env)
    assert isinstance(result.exception, InvalidInputError)


# -- the token through the credential broker (Vault), as the flows get it -----------------


@dataclass(frozen=True)
class VaultCloud:
    """A reference Runs API whose token is the dev environment's Vault secret."""

    server: ServerProcess
    vault: DevVault

    def env(self, workspace: Workspace, **extra: str | None) -> dict[str, str | None]:
        """The CLI's environment: the home, the dev AppRole's secret_id, no Runs API token."""
        login = self.vault.approle("dev")
        return {
            "ORCHESTRATOR_HOME": str(workspace.settings.home),
            "ORCHESTRATOR_ENV": "dev",
            DEFAULT_SECRET_ID_ENV: login.secret_id.get_secret_value(),
            "ORCHESTRATOR_CLOUD_TOKEN": None,
            "COLUMNS": "200",
            **extra,
        }

    def env_only(
        self, workspace: Workspace, workspace_id: str, **extra: str | None
    ) -> dict[str, str | None]:
        """Vault and the endpoint from the environment too: no block is needed."""
        return {
            **self.env(workspace, **extra),
            "ORCHESTRATOR_VAULT_ADDRESS": self.vault.address,
            "ORCHESTRATOR_VAULT_ROLE_ID": self.vault.approle("dev").role_id,
            "ORCHESTRATOR_CLOUD_URL": self.server.url,
            "ORCHESTRATOR_CLOUD_WORKSPACE": workspace_id,
        }

    def runs(self, workspace_id: str) -> list[dict[str, Any]]:
        token = self.vault.values("dev")[CLOUD_TOKEN]
        response = httpx.get(
            f"{self.server.url}/workspaces/{workspace_id}/runs",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture(scope="module")
def vault_cloud(tmp_path_factory: pytest.TempPathFactory, vault: DevVault) -> Iterator[VaultCloud]:
    base = tmp_path_factory.mktemp("runs-api-vault")
    server = spawn_server(
        db_path=base / "runs.sqlite3",
        token=vault.values("dev")[CLOUD_TOKEN],
        log_path=base / "server.log",
    )
    try:
        yield VaultCloud(server, vault)
    finally:
        server.stop()


@pytest.fixture
def no_cloud_or_vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of this process's own environment decides where the token comes from."""
    for name in list(os.environ):
        if name.startswith(("ORCHESTRATOR_CLOUD_", "ORCHESTRATOR_VAULT_")) or name in (
            "VAULT_TOKEN",
            "BAO_TOKEN",
        ):
            monkeypatch.delenv(name)


def test_sync_takes_the_token_from_vault_through_the_blocks(
    app: typer.Typer,
    vault_cloud: VaultCloud,
    workspace: Workspace,
    prefect_api: PrefectApi,
    cloud_workspace_id: str,
    no_cloud_or_vault_env: None,
) -> None:
    names = _save_blocks(vault_cloud, cloud_workspace_id)
    run = create_run(workspace)

    result = CliRunner().invoke(
        app,
        ["sync", run.run_id, "--cloud-block", names.cloud, "--vault-block", names.vault],
        env=vault_cloud.env(workspace),
    )

    assert result.exit_code == 0, result.output
    assert "1 synced, 0 failed" in result.output
    [stored] = vault_cloud.runs(cloud_workspace_id)
    assert stored["summary"]["runId"] == run.run_id
    secrets = [vault_cloud.vault.values("dev")[CLOUD_TOKEN], _secret_id(vault_cloud)]
    assert not any(secret in result.output for secret in secrets)
    assert scan_paths_for(secrets[0], [workspace.settings.home]) == []


def test_sync_reads_vault_from_the_environment_without_prefect(
    vault_cloud: VaultCloud, workspace: Workspace, cloud_workspace_id: str
) -> None:
    """Vault and the endpoint from ORCHESTRATOR_* alone: Prefect is not even imported."""
    run = create_run(workspace)
    env = vault_cloud.env_only(workspace, cloud_workspace_id)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "PREFECT_"))}
    clean |= {k: v for k, v in env.items() if v is not None}
    clean["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # a Prefect call would fail

    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PREFECT, "sync", run.run_id],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 synced, 0 failed" in result.stdout
    assert result.stdout.rstrip().endswith("prefect imported: False")
    assert [r["summary"]["runId"] for r in vault_cloud.runs(cloud_workspace_id)] == [run.run_id]


WITHOUT_PREFECT = """
import sys
from orchestrator.cli import main
try:
    main()
finally:
    print("prefect imported:", "prefect" in sys.modules)
"""


def test_sync_pending_with_the_broker_sends_only_its_environments_runs(
    app: typer.Typer,
    vault_cloud: VaultCloud,
    workspace: Workspace,
    cloud_workspace_id: str,
    no_cloud_or_vault_env: None,
) -> None:
    dev, prod = runs_of_dev_and_prod(workspace)
    env = vault_cloud.env_only(workspace, cloud_workspace_id)

    result = CliRunner().invoke(app, ["sync", "--pending"], env=env)

    assert result.exit_code == 0, result.output
    assert "1 synced, 0 failed, 0 not tried, 1 of other environments left alone" in result.output
    assert [r["summary"]["runId"] for r in vault_cloud.runs(cloud_workspace_id)] == [dev.run_id]
    assert workspace.store.read(prod.task_id, prod.run_id).sync is None


def test_an_explicit_token_comes_before_vault(
    app: typer.Typer,
    cloud_env: dict[str, str],
    workspace: Workspace,
    cloud: CloudServer,
    cloud_workspace_id: str,
    no_cloud_or_vault_env: None,
) -> None:
    run = create_run(workspace)
    unreachable = {
        "ORCHESTRATOR_VAULT_ADDRESS": "http://127.0.0.1:9",
        "ORCHESTRATOR_VAULT_ROLE_ID": "r",
    }

    result = CliRunner().invoke(app, ["sync", run.run_id], env={**cloud_env, **unreachable})

    assert result.exit_code == 0, result.output
    assert len(cloud.runs(cloud_workspace_id)) == 1


def test_a_refused_vault_login_fails_and_sends_nothing(
    app: typer.Typer,
    vault_cloud: VaultCloud,
    workspace: Workspace,
    cloud_workspace_id: str,
    no_cloud_or_vault_env: None,
) -> None:
    run = create_run(workspace)
    wrong = {DEFAULT_SECRET_ID_ENV: "not-the-secret-id-0123"}
    env = vault_cloud.env_only(workspace, cloud_workspace_id, **wrong)

    result = CliRunner().invoke(app, ["sync", run.run_id], env=env)

    assert isinstance(result.exception, CredentialError)
    assert result.exception.cause == "auth_failed"
    assert "refused the credentials" in str(result.exception)
    assert vault_cloud.runs(cloud_workspace_id) == []
    assert workspace.store.read(run.task_id, run.run_id).sync is None


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ORCHESTRATOR_VAULT_ADDRESS": "vault:8200"}, "ORCHESTRATOR_VAULT_ADDRESS: Vault address"),
        (
            {
                "ORCHESTRATOR_VAULT_ADDRESS": "http://v:8200",
                "ORCHESTRATOR_VAULT_TIMEOUT_SECONDS": "x",
            },
            "ORCHESTRATOR_VAULT_TIMEOUT_SECONDS",
        ),
        ({"ORCHESTRATOR_VAULT_ADDRESS": "http://v:8200"}, "needs a role_id"),
    ],
)
def test_bad_vault_settings_in_the_environment_are_bad_input(
    app: typer.Typer,
    workspace: Workspace,
    variables: dict[str, str],
    message: str,
    no_cloud_or_vault_env: None,
) -> None:
    env = {"ORCHESTRATOR_HOME": str(workspace.settings.home), **variables}
    result = CliRunner().invoke(app, ["sync", "--pending"], env=env)
    assert isinstance(result.exception, InvalidInputError)
    assert message in str(result.exception)


def test_a_missing_block_says_what_else_configures_the_endpoint(
    app: typer.Typer, workspace: Workspace, prefect_api: PrefectApi, no_cloud_or_vault_env: None
) -> None:
    env = {"ORCHESTRATOR_HOME": str(workspace.settings.home)}
    result = CliRunner().invoke(app, ["sync", "--pending", "--cloud-block", "nosuch"], env=env)
    assert isinstance(result.exception, InvalidInputError)
    assert "no CodexCloudEndpoint block named 'nosuch'" in str(result.exception)
    assert "or set ORCHESTRATOR_CLOUD_URL and ORCHESTRATOR_CLOUD_WORKSPACE" in str(result.exception)


def test_a_token_key_missing_from_the_secret_fails(
    app: typer.Typer,
    vault_cloud: VaultCloud,
    workspace: Workspace,
    prefect_api: PrefectApi,
    cloud_workspace_id: str,
    no_cloud_or_vault_env: None,
) -> None:
    names = _save_blocks(vault_cloud, cloud_workspace_id, token_key="no_such_key")
    run = create_run(workspace)
    result = CliRunner().invoke(
        app,
        ["sync", run.run_id, "--cloud-block", names.cloud, "--vault-block", names.vault],
        env=vault_cloud.env(workspace),
    )
    assert isinstance(result.exception, CredentialError)
    assert result.exception.cause == "missing_key"
    assert vault_cloud.runs(cloud_workspace_id) == []


@dataclass(frozen=True)
class BlockNames:
    cloud: str
    vault: str


def _save_blocks(vault_cloud: VaultCloud, workspace_id: str, **endpoint: str) -> BlockNames:
    from blocks import CodexCloudEndpoint, VaultCredentials

    names = BlockNames(f"cloud-{workspace_id}", f"vault-{workspace_id}")
    login = vault_cloud.vault.approle("dev")
    VaultCredentials(address=vault_cloud.vault.address, role_id=SecretStr(login.role_id)).save(
        names.vault, overwrite=True
    )
    CodexCloudEndpoint(base_url=vault_cloud.server.url, workspace_id=workspace_id, **endpoint).save(
        names.cloud, overwrite=True
    )
    return names


def runs_of_dev_and_prod(workspace: Workspace) -> tuple[RunManifest, RunManifest]:
    dev = create_run(workspace, "dev-task")
    prod = make_manifest("prod-task")
    prod.env = "prod"
    workspace.store.create(prod)
    return dev, prod


def _secret_id(vault_cloud: VaultCloud) -> str:
    return vault_cloud.vault.approle("dev").secret_id.get_secret_value()
