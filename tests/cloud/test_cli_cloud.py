"""``orchestrator sync`` and ``orchestrator cloud serve``, on an app that registers only them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from orchestrator import InvalidInputError, OrchestratorError, Workspace
from orchestrator.cli import _cloud
from schemas import SyncState
from tests.helpers.canary import scan_cmdlines_for

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


def test_sync_without_settings_names_the_variables(
    app: typer.Typer, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("URL", "WORKSPACE", "TOKEN"):
        monkeypatch.delenv(f"ORCHESTRATOR_CLOUD_{name}", raising=False)
    env = {"ORCHESTRATOR_HOME": str(workspace.settings.home)}
    result = CliRunner().invoke(app, ["sync", "--pending"], env=env)
    assert isinstance(result.exception, InvalidInputError)
    assert "ORCHESTRATOR_CLOUD_URL" in str(result.exception)


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
    dev = create_run(workspace, "dev-task")
    prod = make_manifest("prod-task")
    prod.env = "prod"
    workspace.store.create(prod)

    result = CliRunner().invoke(app, ["sync", "--pending", "--env", "dev"], env=cloud_env)

    assert result.exit_code == 0, result.output
    assert "1 synced, 0 failed, 0 not tried, 1 of other environments left alone" in result.output
    assert [r["summary"]["runId"] for r in cloud.runs(cloud_workspace_id)] == [dev.run_id]
    assert workspace.store.read(prod.task_id, prod.run_id).sync is None


def test_env_goes_with_pending(app: typer.Typer, cloud_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["sync", "some-run", "--env", "dev"], env=cloud_env)
    assert isinstance(result.exception, InvalidInputError)
