"""Real parts for the approval tests: a Prefect server, OpenBao, the replay model.

A ``prefect server start`` of its own (fresh PREFECT_HOME, loopback, stopped by PID)
holds the blocks; each pipeline run is ``orchestrator run`` in a subprocess with
PREFECT_API_URL pointing at it, and every decision comes from yet another process
(``orchestrator approve``/``reject``) or from the UI in a browser.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from devstack import prepare_sample_repo
from devstack.replay import ReplayServer, replay_config
from devstack.vault import DevVault
from flows.approvals import run_with_client, waiting_gates
from orchestrator.cli import main
from orchestrator.credentials import DEFAULT_SECRET_ID_ENV
from orchestrator.lifecycle import RunHandle
from orchestrator.runstore import load_manifest
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import AgentBackend, PhaseName, RunManifest, WaitingGate
from tests.conftest import EXAMPLES, free_port, sample_manifest
from tests.helpers.pinned_cli import PINNED_CLI

HERE = Path(__file__).resolve().parent
TASKS = HERE / "tasks"
BIN = Path(sys.executable).parent
CLI = [str(Path(sys.executable).parent / "orchestrator")]  # the real console script
SERVER_START_TIMEOUT = 90
RUN_TIMEOUT = 150
GATE_TIMEOUT = 90


@dataclass(frozen=True)
class PrefectServer:
    """``prefect server start`` on a loopback port."""

    api_url: str
    ui_url: str
    home: Path
    pid: int


def _prefect_free_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server (API and UI) with its own home; SIGTERM then SIGKILL by PID."""
    base = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    ui_url = f"http://127.0.0.1:{port}"
    env = {
        **_prefect_free_env(),
        "PREFECT_HOME": str(base / "home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"{ui_url}/api",
    }
    with (base / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_healthy(f"{ui_url}/api/health", process, base / "server.log")
        yield PrefectServer(f"{ui_url}/api", ui_url, base / "home", process.pid)
    finally:
        _stop(process)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"prefect server exited:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"prefect server not healthy after {SERVER_START_TIMEOUT}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (its pid leads it), SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def escalation_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayServer]:
    """The replay provider with the literal fixture set (escalation, sample, and a plan in
    markdown and HTML for the browser tests)."""
    log = tmp_path_factory.mktemp("replay") / "requests.jsonl"
    with ReplayServer(EXAMPLES / "replay" / "literal", request_log=log) as server:
        yield server


@dataclass
class PipelineRun:
    """``orchestrator run`` in a subprocess."""

    run_id: str
    repo: Path
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"run {self.run_id} did not finish:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL the run's process and its process group (codex servers), and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class GateStack:
    """Start pipeline runs, see what they wait for, decide from other processes."""

    server: PrefectServer
    replay: ReplayServer
    vault: DevVault
    base: Path
    runs: list[PipelineRun] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.base / "orchestrator-home"

    def env(self) -> dict[str, str]:
        """A process that reaches the Prefect API (and, for runs, Vault) and nothing else."""
        return {
            **_prefect_free_env(),
            "PREFECT_API_URL": self.server.api_url,
            "PREFECT_HOME": str(self.base / "client-prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "ORCHESTRATOR_HOME": str(self.home),
            DEFAULT_SECRET_ID_ENV: self.vault.approle("dev").secret_id.get_secret_value(),
            "COLUMNS": "200",
        }

    def start(
        self,
        task: str,
        name: str,
        *,
        prepare: Callable[[Path], None] | None = None,
        codex_block: str = "default",
        env: dict[str, str] | None = None,
        clock: datetime | None = None,
    ) -> PipelineRun:
        """``orchestrator run tests/approvals/tasks/<task>`` on a fresh sample repository
        (changed by ``prepare`` first, when given), with the codex settings block named,
        ``env`` added to its environment and, with ``clock``, its clock pinned to start
        there (``tests/helpers/pinned_cli.py``)."""
        run_id = f"{name}-{uuid.uuid4().hex[:6]}"
        repo = prepare_sample_repo(self.base / "repos" / run_id)
        if prepare is not None:
            prepare(repo)
        command = ["run", str(TASKS / task), "--repo", str(repo)]
        command += ["--run-id", run_id, "--env", "dev", "--cloud-block", ""]
        command += ["--codex-block", codex_block]
        log = self.base / "logs" / f"{run_id}.log"
        program = [sys.executable, str(PINNED_CLI), clock.isoformat()] if clock else None
        return self._spawn(command, run_id, repo, log, env=env, program=program)

    def resume(self, run: PipelineRun) -> PipelineRun:
        """``orchestrator resume RUN`` in a process of its own, logging after the run's log."""
        log = run.log.with_name(f"{run.log.stem}-resume{len(self.runs)}.log")
        return self._spawn(["resume", run.run_id, "--cloud-block", ""], run.run_id, run.repo, log)

    def _spawn(
        self,
        args: list[str],
        run_id: str,
        repo: Path,
        log: Path,
        *,
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
    ) -> PipelineRun:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:  # a session of its own: a kill takes its codex servers too
            process = subprocess.Popen(
                [*(program or [str(BIN / "orchestrator")]), *args],
                env={**self.env(), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run = PipelineRun(run_id, repo, process, log)
        self.runs.append(run)
        return run

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``orchestrator`` command line, in a process of its own."""
        return subprocess.run(
            [*CLI, *args], env=self.env(), capture_output=True, text=True, timeout=60, check=False
        )

    def cli_here(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command line in this process (quicker, for the error cases)."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        out, err = io.StringIO(), io.StringIO()
        with (
            temporary_settings(updates={PREFECT_API_URL: self.server.api_url}),
            pytest.MonkeyPatch.context() as patch,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            patch.setattr(sys, "argv", ["orchestrator", *args])
            patch.setenv("COLUMNS", "200")
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    def waiting(self, run_id: str | None = None) -> list[WaitingGate]:
        """What waits (of ``run_id``), read from the Prefect API in this process."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        def in_thread() -> list[WaitingGate]:  # a thread: Playwright's sync API holds a loop
            with temporary_settings(updates={PREFECT_API_URL: self.server.api_url}):
                return run_with_client(waiting_gates, run=run_id)

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(in_thread).result(timeout=30)

    def wait_for_gate(self, run: PipelineRun, gate: str) -> WaitingGate:
        """The gate ``run`` waits at, once it waits there with its form saved (bounded).

        Prefect sets a run Paused before it saves the form's schema: a resume in between
        is refused.
        """
        deadline = time.monotonic() + GATE_TIMEOUT
        while time.monotonic() < deadline:
            found = [
                w for w in self.waiting(run.run_id) if gate in (w.notice.gate, w.notice.approval_id)
            ]
            if found and self._form_saved(found[0]):
                return found[0]
            if run.process.poll() is not None:
                raise AssertionError(f"run {run.run_id} ended before {gate}:\n{run.output()}")
            time.sleep(0.3)
        raise AssertionError(f"run {run.run_id} never waited at {gate}:\n{run.output()}")

    def with_home(self, base: Path) -> GateStack:
        """The same servers and blocks, runs in an ORCHESTRATOR_HOME of their own."""
        return GateStack(self.server, self.replay, self.vault, base)

    def kill_runs(self) -> None:
        """Kill the runs started here that are still alive."""
        for run in self.runs:
            if run.process.poll() is None:
                run.kill()

    def _form_saved(self, waiting: WaitingGate) -> bool:
        key = f"paused-{waiting.notice.approval_id}-schema"
        url = f"{self.server.api_url}/flow_runs/{waiting.flow_run_id}/input/{key}"
        return httpx.get(url, timeout=10).status_code == 200

    def manifest(self, run_id: str) -> RunManifest:
        store = Workspace.open(Settings(home=self.home)).store
        return load_manifest(store.find(run_id).manifest_path)


@pytest.fixture(scope="session")
def gate_stack(
    tmp_path_factory: pytest.TempPathFactory,
    prefect_server: PrefectServer,
    vault: DevVault,
    escalation_replay: ReplayServer,
) -> Iterator[GateStack]:
    """Blocks saved as 'default' on the test server; runs killed at the end if still alive."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import VaultCredentials

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        VaultCredentials(address=vault.address, role_id=vault.approle("dev").role_id).save(
            "default", overwrite=True
        )
    stack = GateStack(
        prefect_server, escalation_replay, vault, tmp_path_factory.mktemp("approvals")
    )
    save_codex_block(stack, "mcp")
    try:
        yield stack
    finally:
        stack.kill_runs()


def save_codex_block(stack: GateStack, backend: AgentBackend) -> None:
    """The 'default' codex block on the test server: the stack's replay, ``backend``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import CodexServerSettings

    config = replay_config(stack.replay.url, backend=backend)
    with temporary_settings(updates={PREFECT_API_URL: stack.server.api_url}):
        CodexServerSettings.from_config(config).save("default", overwrite=True)


@pytest.fixture(params=["mcp", "app-server"])
def backend(request: pytest.FixtureRequest, gate_stack: GateStack) -> Iterator[AgentBackend]:
    """Each agent backend in turn for the runs of a test (the block says so); ``mcp``,
    the default, again after it."""
    name: AgentBackend = request.param
    save_codex_block(gate_stack, name)
    try:
        yield name
    finally:
        save_codex_block(gate_stack, "mcp")


def steps_backends(manifest: RunManifest) -> set[str | None]:
    """The backend every agent step of ``manifest`` ran on."""
    return {s.backend for phase in PhaseName for s in manifest.phases.get(phase).steps}


@pytest.fixture
def handle(workspace: Workspace) -> RunHandle:
    """A run just started in a fresh workspace, for gates without servers."""
    manifest = sample_manifest(run_id="gates-unit")
    workspace.store.create(manifest, actor="test")
    return RunHandle(workspace, manifest.task_id, manifest.run_id)
