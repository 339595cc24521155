"""Fixtures shared by the whole suite."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.redaction import Redactor, set_redactor, uninstall_log_redaction
from orchestrator.runstore import new_run_id
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import ExecutionMode, ModeDecision, RunManifest, TaskSnapshot, TaskSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


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
