"""Fixtures for the cloud sync tests: a workspace, and the reference Runs API on loopback.

The server is one real subprocess for the whole session (``python -m
devstack.runs_api``), stopped by its pid at the end. Tests stay apart by
using a fresh workspace id each, and the fault plan is cleared around every test.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import ServerProcess
from devstack.runs_api import spawn_server
from orchestrator import Workspace
from orchestrator.runs_api import RunsApiClient

from .helpers import FAST_BACKOFF

CLOUD_TOKEN = f"cloud-canary-{secrets.token_hex(16)}"
"""The server's bearer token; the canary test looks for it everywhere."""


@dataclass
class CloudServer:
    """The running reference server, and an authorised HTTP client to inspect it."""

    process: ServerProcess
    http: httpx.Client
    token: str = CLOUD_TOKEN

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def set_faults(self, **plan: Any) -> None:
        self.http.post("/_faults", json=plan).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_faults").raise_for_status()

    def runs(self, workspace_id: str) -> list[dict[str, Any]]:
        """Every run the server holds for ``workspace_id``."""
        items: list[dict[str, Any]] = []
        while True:
            params = {"limit": 1000, "offset": len(items)}
            page = self.http.get(f"/workspaces/{workspace_id}/runs", params=params)
            page.raise_for_status()
            data = page.json()
            items += data["items"]
            if len(items) >= data["total"] or not data["items"]:
                return items


@pytest.fixture(scope="session")
def cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudServer]:
    base = tmp_path_factory.mktemp("runs-api")
    process = spawn_server(
        db_path=base / "runs.sqlite3", token=CLOUD_TOKEN, log_path=base / "server.log", quiet=False
    )
    http = httpx.Client(
        base_url=process.url, headers={"authorization": f"Bearer {CLOUD_TOKEN}"}, timeout=10
    )
    try:
        yield CloudServer(process, http)
    finally:
        http.close()
        process.stop()


@pytest.fixture
def cloud(cloud_server: CloudServer) -> Iterator[CloudServer]:
    """The session's server with no faults planned, before and after the test."""
    cloud_server.clear_faults()
    yield cloud_server
    cloud_server.clear_faults()


@pytest.fixture
def cloud_workspace_id() -> str:
    return f"ws-{secrets.token_hex(6)}"


@pytest.fixture
def cloud_env(cloud: CloudServer, workspace: Workspace, cloud_workspace_id: str) -> dict[str, str]:
    """The environment the CLI reads: the workspace's home and the server's settings."""
    return {
        "ORCHESTRATOR_HOME": str(workspace.settings.home),
        "ORCHESTRATOR_CLOUD_URL": cloud.url,
        "ORCHESTRATOR_CLOUD_WORKSPACE": cloud_workspace_id,
        "ORCHESTRATOR_CLOUD_TOKEN": cloud.token,
        "COLUMNS": "200",
    }


@pytest.fixture
def make_client(
    cloud: CloudServer, workspace: Workspace, cloud_workspace_id: str
) -> Iterator[Callable[..., RunsApiClient]]:
    """Build clients of the real server (fast backoff, the workspace's audit log)."""
    clients: list[RunsApiClient] = []

    def make(**options: Any) -> RunsApiClient:
        options.setdefault("backoff", FAST_BACKOFF)
        options.setdefault("audit", workspace.audit)
        options.setdefault("redactor", workspace.redactor)
        options.setdefault("timeout", 5.0)
        token = options.pop("token", cloud.token)
        client = RunsApiClient(cloud.url, cloud_workspace_id, token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
