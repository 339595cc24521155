"""Real parts for the flow tests: Prefect API, OpenBao, the replay model, the Runs API."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.replay import ReplayServer, replay_config
from orchestrator.credentials import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV
from orchestrator.dev_vault import DevVault
from orchestrator.runs_api_server import ServerProcess, spawn_server
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from tests.conftest import EXAMPLES

CLOUD_WORKSPACE = "demo"


@pytest.fixture(scope="session")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayServer]:
    """The replay provider serving the sample fixture set, in a background thread."""
    log = tmp_path_factory.mktemp("replay") / "requests.jsonl"
    with ReplayServer(EXAMPLES / "replay" / "sample", request_log=log) as server:
        yield server


@pytest.fixture(scope="session")
def runs_api(tmp_path_factory: pytest.TempPathFactory, vault: DevVault) -> Iterator[ServerProcess]:
    """The reference Runs API server, accepting the dev environment's cloud token."""
    folder = tmp_path_factory.mktemp("runs-api")
    server = spawn_server(
        db_path=folder / "runs.sqlite3",
        token=vault.values("dev")[CLOUD_TOKEN],
        log_path=folder / "server.log",
    )
    try:
        yield server
    finally:
        server.stop()


def prepare_repo(dest: Path) -> Path:
    """A git repository with the sample project committed on ``main``."""
    shutil.copytree(EXAMPLES / "sample-repo", dest)
    for command in (
        ["git", "init", "--quiet", "--initial-branch=main"],
        ["git", "add", "--all"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "sample"],
    ):
        subprocess.run(command, cwd=dest, check=True, capture_output=True)
    return dest


@dataclass(frozen=True)
class Stack:
    """Everything a pipeline run needs, configured through the 'default' blocks."""

    workspace: Workspace
    repo: Path
    replay: ReplayServer
    runs_api: ServerProcess
    vault: DevVault

    def task(self, name: str) -> Path:
        return EXAMPLES / "tasks" / name


@pytest.fixture
def stack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_api: object,
    vault: DevVault,
    replay: ReplayServer,
    runs_api: ServerProcess,
) -> Stack:
    """A fresh workspace and sample repository; blocks point at the session's servers."""
    from blocks import CodexCloudEndpoint, CodexServerSettings, VaultCredentials

    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    monkeypatch.setenv(DEFAULT_SECRET_ID_ENV, vault.approle("dev").secret_id.get_secret_value())
    VaultCredentials(address=vault.address, role_id=vault.approle("dev").role_id).save(
        "default", overwrite=True
    )
    CodexServerSettings.from_config(replay_config(replay.url)).save("default", overwrite=True)
    CodexCloudEndpoint(base_url=runs_api.url, workspace_id=CLOUD_WORKSPACE).save(
        "default", overwrite=True
    )
    return Stack(
        workspace=Workspace.open(Settings(home=home)),
        repo=prepare_repo(tmp_path / "sample-repo"),
        replay=replay,
        runs_api=runs_api,
        vault=vault,
    )
