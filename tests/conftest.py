"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devstack.vault import DevVault
from orchestrator.redaction import Redactor, set_redactor, uninstall_log_redaction
from orchestrator.runstore import new_run_id
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import ExecutionMode, ModeDecision, RunManifest, TaskSnapshot, TaskSpec

if "PYTEST_XDIST_WORKER" in os.environ:
    # xdist gives its workers COLUMNS=80 and LINES=24; every CLI a test starts would
    # inherit them. A worker's environment is the suite's, as in a run without xdist.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


ONE_WORKER_FOLDERS = ("approvals", "deploy")
"""Test folders whose tests run on one xdist worker each (``make test`` runs two, with
``--dist loadgroup``): their session stacks (the gate stack; the served SQLite and
PostgreSQL stacks) then start once, not once per worker. The rest is spread test by
test; the suite mostly waits on processes, so two workers halve its time on 2 cores."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(REPO_ROOT / "tests").parts
        if len(parts) > 1 and parts[0] in ONE_WORKER_FOLDERS:
            item.add_marker(pytest.mark.xdist_group(parts[0]))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, like Prefect."""
    return "asyncio"


def _is_loopback_address(address: object) -> bool:
    """True for an AF_UNIX path or an IPv4/IPv6 loopback address (``(host, port, ...)``)."""
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths and abstract sockets stay on this machine
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS: off loopback


@pytest.fixture(scope="session", autouse=True)
def _loopback_network_only() -> Iterator[None]:
    """No test process opens a connection off loopback (processes it starts are checked
    where they are configured, e.g. codex's model endpoint)."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: object) -> None:
        if not _is_loopback_address(address):
            sock.close()  # callers that expect OSError would leak it
            raise AssertionError(f"tests must stay on loopback; refused to connect to {address}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return original_connect_ex(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        yield


@pytest.fixture(autouse=True)
def _codex_models_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every codex process must use a model endpoint on loopback; no API key in reach.

    Wraps :func:`agents._process.spawn`, the one place a codex server starts, and reads
    the model endpoint from the ``config.toml`` the process is about to load.
    """
    from agents import _process as process_module

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    original = process_module.spawn

    async def guarded(command: list[str], *, env: Mapping[str, str], cwd: Path) -> object:
        host = _model_host(env)
        if not _is_loopback_address((host, 0)):
            raise AssertionError(f"tests must not call a model outside loopback: {host!r}")
        return await original(command, env=env, cwd=cwd)

    monkeypatch.setattr(process_module, "spawn", guarded)


def _model_host(env: Mapping[str, str]) -> str:
    """The host of the model provider codex will use with this environment ('' if none)."""
    home = env.get("CODEX_HOME")
    if not home:
        return ""
    config = tomllib.loads((Path(home) / "config.toml").read_text(encoding="utf-8"))
    provider = config.get("model_providers", {}).get(config.get("model_provider", "openai"), {})
    return urlsplit(str(provider.get("base_url", "https://api.openai.com/v1"))).hostname or ""


@pytest.fixture(autouse=True)
def _fresh_redactor() -> Iterator[Redactor]:
    """Each test gets an empty process-wide redactor and no logging hook left behind."""
    redactor = Redactor()
    previous = set_redactor(redactor)
    yield redactor
    uninstall_log_redaction()
    set_redactor(previous)


@pytest.fixture
def redactor(_fresh_redactor: Redactor) -> Redactor:
    return _fresh_redactor


@pytest.fixture
def workspace(tmp_path: Path, redactor: Redactor) -> Workspace:
    """An empty workspace (``.runs/``, ``out/``) in a temporary folder."""
    return Workspace.open(Settings(home=tmp_path / "home", env="dev"), redactor=redactor)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample_spec(task_id: str = "add-text-helpers") -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "id": task_id,
            "title": "Add helpers",
            "goal": "Add slugify.",
            "target": {"repo": "../sample-repo"},
        }
    )


def sample_manifest(task_id: str = "add-text-helpers", run_id: str | None = None) -> RunManifest:
    """A valid manifest of a run that just started."""
    now = datetime.now(UTC)
    return RunManifest(
        task_id=task_id,
        run_id=run_id or new_run_id(),
        env="dev",
        created_at=now,
        updated_at=now,
        task=TaskSnapshot(
            path="examples/tasks/add-text-helpers.yaml",
            sha256="0" * 64,
            spec=sample_spec(task_id),
            repo_path="/tmp/sample-repo",
            base_commit="0" * 40,
        ),
        mode=ModeDecision(mode=ExecutionMode.MCP, reason="execution.parallel is false"),
    )


@dataclass(frozen=True)
class PrefectApi:
    url: str
    database: Path
    home: Path


def _close_prefect_result_storage_client() -> None:
    """Work around a Prefect 3.9.1 leak that ``filterwarnings = error`` turns into failures.

    ``prefect.results._read_server_default_result_storage_block_id`` opens a sync API
    client for every flow run and never closes it, so each run leaves an unclosed
    socket behind (a ResourceWarning at garbage collection). This is the same function
    with the client closed.
    """
    import httpx
    import prefect.results
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    def read_block_id():  # type: ignore[no-untyped-def]
        try:
            with get_client(sync_client=True) as client:
                configuration = client.read_server_default_result_storage()
        except (PrefectHTTPStatusError, httpx.HTTPError, RuntimeError, ValueError):
            return None
        return configuration.default_result_storage_block_id

    prefect.results._read_server_default_result_storage_block_id = read_block_id


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectApi]:
    """One ``prefect_test_harness()`` for the whole session (a fresh SQLite database)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    _close_prefect_result_storage_client()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_HOME", str(home))
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        # Events reach the database within 0.2 s, not 5 s, so tests can read them back.
        patch.setenv("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL", "0.2")
        with prefect_test_harness(server_startup_timeout=60):
            database = PREFECT_SERVER_DATABASE_CONNECTION_URL.value().partition(":///")[2]
            yield PrefectApi(url=PREFECT_API_URL.value(), database=Path(database), home=home)


@pytest.fixture(scope="session")
def vault() -> Iterator[DevVault]:
    """A real OpenBao dev server: envs ``dev`` and ``prod``, random secrets, one AppRole each."""
    with DevVault(envs=("dev", "prod")) as server:
        yield server
