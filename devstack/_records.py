"""``stack.json``: which processes a dev stack started, and what it offers (no secret in it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.supervisor import ProcessRef

STACK_FILE = "stack.json"
LOG_DIR = "logs"


class ServiceRecord(BaseModel):
    """One process the stack started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pid: int
    start_ticks: int = Field(description="Its start time, so a recycled PID is never hit.")
    url: str = ""
    log: Path

    @property
    def ref(self) -> ProcessRef:
        return ProcessRef(self.pid, self.start_ticks)

    @property
    def running(self) -> bool:
        return self.ref.running


class StackInfo(BaseModel):
    """What a started stack offers, as ``orchestrator serve`` prints it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: Path
    home: Path
    project_dir: Path | None
    ui_url: str = ""
    api_url: str = ""
    work_pool: str = ""
    max_runs: int | None = Field(
        default=None, description="The work pool's concurrency limit (None: no limit)."
    )
    database: str = Field(
        default="sqlite", description="The Prefect server's database (no password in it)."
    )
    deployments: list[str] = Field(default_factory=list)
    nightly_schedule: str = ""
    vault_address: str
    env: str
    runs_api_url: str
    cloud_workspace: str
    model_url: str
    model: str
    replay_fixtures: Path | None
    sample_repo: Path
    subtask_workers: int = Field(
        default=0, description="Subtask workers started (serve --workers); 0: none."
    )
    started_in_seconds: float


class StackState(BaseModel):
    """The content of ``stack.json``."""

    model_config = ConfigDict(extra="forbid")

    services: list[ServiceRecord] = Field(default_factory=list)
    info: StackInfo | None = None


_state_lock = threading.Lock()


def read_stack(state_dir: Path) -> StackState:
    """What ``stack.json`` under ``state_dir`` records (empty when there is none)."""
    try:
        text = (state_dir / STACK_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return StackState()
    return StackState.model_validate_json(text)


def update_stack(state_dir: Path, change: Callable[[StackState], None]) -> None:
    """Read ``stack.json``, apply ``change``, write it back atomically."""
    with _state_lock:
        state = read_stack(state_dir)
        change(state)
        temp = state_dir / f".{STACK_FILE}.tmp"
        temp.write_text(state.model_dump_json(indent=2) + "\n", encoding="utf-8")
        temp.replace(state_dir / STACK_FILE)


def record_service(state_dir: Path, record: ServiceRecord) -> None:
    """Add ``record`` to ``stack.json`` (replacing one of the same name)."""

    def upsert(state: StackState) -> None:
        state.services = [s for s in state.services if s.name != record.name] + [record]

    update_stack(state_dir, upsert)


def forget_stack(state_dir: Path) -> None:
    (state_dir / STACK_FILE).unlink(missing_ok=True)


def state_folder(state_dir: Path) -> Path:
    """``state_dir``, absolute and created (mode 0700: it holds a secret_id file)."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return state_dir
