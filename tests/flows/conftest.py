"""Real parts for the flow tests: Prefect API, OpenBao, the replay model, the Runs API."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import ServerProcess, prepare_sample_repo
from devstack.replay import ReplayServer, replay_config
from devstack.runs_api import spawn_server
from devstack.vault import DevVault
from orchestrator.credentials import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from tests.conftest import EXAMPLES, PrefectApi

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
        repo=prepare_sample_repo(tmp_path / "sample-repo"),
        replay=replay,
        runs_api=runs_api,
        vault=vault,
    )


ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")


def cli_env(stack: Stack, prefect_api: PrefectApi) -> dict[str, str]:
    """The environment of an ``orchestrator`` subprocess using this stack."""
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_api.url,
        "PREFECT_HOME": str(prefect_api.home),
        "ORCHESTRATOR_HOME": str(stack.workspace.settings.home),
        DEFAULT_SECRET_ID_ENV: stack.vault.approle("dev").secret_id.get_secret_value(),
    }


def start_cli(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``orchestrator ARGS`` in its own process group, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [ORCHESTRATOR, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything in its group, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@dataclass(frozen=True)
class OwnRunsApi:
    """A reference Runs API server of one test: an empty database (so counts are exact)
    and a fault plan no other test sees."""

    server: ServerProcess
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def runs(self) -> list[dict[str, object]]:
        """Every run the server holds in the test workspace (``GET .../runs``)."""
        import httpx

        answer = httpx.get(
            f"{self.url}/workspaces/{CLOUD_WORKSPACE}/runs",
            params={"limit": 1000},
            headers={"authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        answer.raise_for_status()
        items: list[dict[str, object]] = answer.json()["items"]
        return items

    def run_ids(self) -> list[tuple[str, str]]:
        """(cloud run id, our run id) of every run the server holds, oldest first."""
        ids = []
        for run in self.runs():
            summary = run["summary"]
            assert isinstance(summary, dict)
            ids.append((str(run["id"]), str(summary["runId"])))
        return ids

    def set_faults(self, **plan: object) -> None:
        """Replace the fault plan (``POST /_faults``), e.g. ``fail_next=3``."""
        import httpx

        answer = httpx.post(
            f"{self.url}/_faults",
            json=plan,
            headers={"authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        answer.raise_for_status()


class RunsApiServers:
    """Starts reference Runs API servers for one test, each accepting the token given."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._started: list[ServerProcess] = []

    def start(self, token: str) -> OwnRunsApi:
        folder = self._folder / f"runs-api-{len(self._started)}"
        server = spawn_server(
            db_path=folder / "runs.sqlite3", token=token, log_path=folder / "server.log"
        )
        self._started.append(server)
        return OwnRunsApi(server, token)

    def stop(self) -> None:
        for server in self._started:
            server.stop()


@pytest.fixture
def own_runs_api(tmp_path: Path) -> Iterator[RunsApiServers]:
    """Start a Runs API server of the test's own with ``own_runs_api.start(token)``;
    every one is stopped at teardown."""
    servers = RunsApiServers(tmp_path / "own-runs-api")
    try:
        yield servers
    finally:
        servers.stop()
