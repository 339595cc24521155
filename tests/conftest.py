"""Fixtures shared by the whole suite."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.vault import DevVault
from orchestrator.redaction import Redactor, set_redactor, uninstall_log_redaction
from orchestrator.runstore import new_run_id
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import ExecutionMode, ModeDecision, RunManifest, TaskSnapshot, TaskSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, like Prefect."""
    return "asyncio"


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
