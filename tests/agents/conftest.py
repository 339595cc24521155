"""Fixtures of the agent tests: the replay provider, codex settings, temporary git repos.

The tests that drive real codex take ``codex_config`` (or ``backend``): they run once per
agent backend (``mcp`` and ``app-server``), one conformance suite for both.

Every codex process a test starts talks to a replay provider on 127.0.0.1: the
suite-wide guard in ``tests/conftest.py`` refuses to start codex with any other model
endpoint (and drops OPENAI_API_KEY from the environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.replay import ReplayServer, replay_config
from schemas import AgentBackend, CodexServerConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
SAMPLE_FIXTURES = EXAMPLES / "replay" / "sample"
FAILING_FIXTURES = EXAMPLES / "replay" / "sample-failing"
TEST_FIXTURES = Path(__file__).resolve().parent / "fixtures"
BACKENDS: list[AgentBackend] = ["mcp", "app-server"]
GIT_IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def replay_factory(tmp_path: Path) -> Iterator[Callable[..., ReplayServer]]:
    """Start replay providers (stopped at teardown); each logs to its own JSONL file."""
    servers: list[ReplayServer] = []

    def start(fixtures: Path = TEST_FIXTURES / "session", **options: object) -> ReplayServer:
        log = tmp_path / f"requests-{len(servers)}.jsonl"
        server = ReplayServer(fixtures, request_log=log, **options)  # type: ignore[arg-type]
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def replay(replay_factory: Callable[..., ReplayServer]) -> ReplayServer:
    """The replay provider serving the session test scripts."""
    return replay_factory()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> AgentBackend:
    """Each agent backend in turn: a test taking it runs on both."""
    name: AgentBackend = request.param
    return name


@pytest.fixture
def codex_config(replay: ReplayServer, backend: AgentBackend) -> CodexServerConfig:
    return replay_config(
        replay.url, backend=backend, call_timeout_seconds=30, startup_timeout_seconds=15
    )


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return result.stdout


def init_repo(path: Path) -> Path:
    """Make ``path`` a git repository with everything in it committed on ``main``."""
    git("init", "-q", "-b", "main", cwd=path)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "base", cwd=path)
    return path


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A small git repository with one committed file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("# scratch\n")
    return init_repo(repo)


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """A git copy of examples/sample-repo (the textkit package)."""
    repo = tmp_path / "sample-repo"
    shutil.copytree(EXAMPLES / "sample-repo", repo)
    return init_repo(repo)


def descendants(pid: int) -> set[int]:
    """Live descendants of ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_gone(pids: set[int], *, seconds: float) -> set[int]:
    """The pids still alive after waiting up to ``seconds`` (polling /proc: no event exists)."""
    deadline = time.monotonic() + seconds
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def process_environment(pid: int) -> list[bytes]:
    """``NAME=value`` entries of a process's environment (Linux /proc)."""
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")
