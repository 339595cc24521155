"""Issue 7 at pipeline level: Vault secrets live in memory only, and a Vault that fails
stops a run before any agent call with one clear error.

The canary test puts unique values into Vault for both keys the orchestrator reads,
makes the pipeline really use them (the model key reaches the codex server through
its provider's ``env_key``; the cloud token is the only one a Runs API server of the
test's own accepts), and then looks for them everywhere they must not be.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import anyio
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import PrefectConsoleHandler

from agents._home import DEFAULT_PARENT
from blocks import CodexCloudEndpoint, CodexServerSettings, VaultCredentials
from devstack.replay import replay_config
from devstack.vault import DevVault
from flows.pipeline import pipeline
from orchestrator.credentials import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV, OPENAI_API_KEY
from orchestrator.exceptions import CredentialError
from schemas import PhaseName, RunManifest, RunStatus
from tests.conftest import PrefectApi
from tests.flows.conftest import CLOUD_WORKSPACE, RunsApiServers, Stack
from tests.helpers.canary import CmdlineWatch, scan_cmdlines_for, scan_paths_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TASK = "add-text-helpers.yaml"
MODEL_KEY_ENV = "OPENAI_API_KEY"
CODEX_HOMES = DEFAULT_PARENT.expanduser()
"""Where each codex session makes its private CODEX_HOME (and removes it at exit)."""


# -- watching a run ------------------------------------------------------------------


class CodexHomeWatch:
    """Keep every private CODEX_HOME created while a block runs, for a scan afterwards.

    A session removes its CODEX_HOME when it ends. This polls for new
    ``codex-home-*`` folders and hard-links each file in them into ``keep`` (on the
    same file system): a hard link is the same file, so the scan afterwards reads
    each file's last content, appends and rewrites included, after the folder is
    gone. A file replaced by a rename is a new file and is linked again.
    """

    def __init__(self, keep: Path, *, parent: Path = CODEX_HOMES, interval: float = 0.02) -> None:
        self.keep = keep
        self._parent = parent
        self._interval = interval
        self._before: set[str] = set()
        self._linked: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codex-home-watch", daemon=True)

    @property
    def homes(self) -> list[Path]:
        """The kept copy of each CODEX_HOME seen."""
        return sorted(p for p in self.keep.iterdir() if p.is_dir())

    def __enter__(self) -> CodexHomeWatch:
        self._parent.mkdir(parents=True, exist_ok=True)
        self.keep.mkdir(parents=True)
        self._before = {p.name for p in self._parent.iterdir()}
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self._interval):
                self._sample()
                return

    def _sample(self) -> None:
        for home in self._parent.glob("codex-home-*"):
            if home.name not in self._before:
                self._link_files(home)

    def _link_files(self, home: Path) -> None:
        for root, _dirs, names in os.walk(home):
            for name in names:
                self._link(Path(root, name), home)

    def _link(self, file: Path, home: Path) -> None:
        try:
            info = file.lstat()
            if not file.is_file() or (info.st_dev, info.st_ino) in self._linked:
                return
            target = self.keep / home.name / file.relative_to(home)
            target = target.with_name(f"{target.name}.{info.st_ino}")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(file, target)
        except FileNotFoundError:
            return  # removed meanwhile: the session ended, or a temp file went
        self._linked.add((info.st_dev, info.st_ino))


class EnvironWatch:
    """Sample every process's initial environment while a block runs.

    Records the program of each process whose ``/proc/<pid>/environ`` holds
    ``NAME=secret``: the positive control that a secret really reached a process.
    """

    def __init__(self, name: str, secret: str, *, interval: float = 0.05) -> None:
        self._needle = f"{name}={secret}".encode() + b"\0"
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="environ-watch", daemon=True)
        self.holders: set[str] = set()

    def __enter__(self) -> EnvironWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for pid in Path("/proc").iterdir():
                if pid.name.isdigit():
                    self._check(pid)

    def _check(self, pid: Path) -> None:
        try:
            if self._needle in (pid / "environ").read_bytes() + b"\0":
                program = (pid / "cmdline").read_bytes().split(b"\0", 1)[0]
                self.holders.add(os.path.basename(program.decode(errors="replace")))
        except OSError:
            return  # gone meanwhile, or not ours to read


@contextmanager
def captured_logs(folder: Path) -> Iterator[list[Path]]:
    """The log output of this process while the block runs, as two files in ``folder``.

    ``log-output.txt``: every record, down to DEBUG for our own packages, from the
    root logger and the loggers that do not propagate to it (Prefect's
    ``prefect.extra`` and ``prefect._internal``, uvicorn, fastapi).
    ``console-output.txt``: what Prefect's console handler prints, rendered by a twin
    of it (pytest holds the real one's stream).
    """
    plain = logging.FileHandler(folder / "log-output.txt", encoding="utf-8")
    plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    console_file = (folder / "console-output.txt").open("w", encoding="utf-8")
    root = logging.getLogger()
    twins = [
        _twin(handler, console_file)
        for handler in root.handlers
        if isinstance(handler, PrefectConsoleHandler)
    ]
    assert twins, "Prefect's console handler is not on the root logger"
    hosts = [root, *map(logging.getLogger, ("prefect.extra", "prefect._internal", "uvicorn"))]
    hosts.append(logging.getLogger("fastapi"))
    ours = [logging.getLogger(name) for name in ("orchestrator", "agents", "blocks", "flows")]
    levels = [logger.level for logger in ours]
    for logger in hosts:
        logger.addHandler(plain)
    for twin in twins:
        root.addHandler(twin)
    for logger in ours:
        logger.setLevel(logging.DEBUG)
    try:
        yield [folder / "log-output.txt", folder / "console-output.txt"]
    finally:
        for logger in hosts:
            logger.removeHandler(plain)
        for twin in twins:
            root.removeHandler(twin)
        for logger, level in zip(ours, levels, strict=True):
            logger.setLevel(level)
        plain.close()
        console_file.close()


def _twin(handler: PrefectConsoleHandler, stream: TextIO) -> PrefectConsoleHandler:
    twin = PrefectConsoleHandler(stream=stream, level=handler.level)
    twin.setFormatter(handler.formatter)
    return twin


# -- the canary run ------------------------------------------------------------------


@dataclass(frozen=True)
class Canary:
    model_key: str
    cloud_token: str

    @property
    def values(self) -> dict[str, str]:
        return {OPENAI_API_KEY: self.model_key, CLOUD_TOKEN: self.cloud_token}


@pytest.fixture
def canary(stack: Stack) -> Iterator[Canary]:
    """Unique values for both keys in the dev secret; the previous ones back at teardown."""
    previous = stack.vault.values("dev")
    values = Canary(
        model_key=f"canary-model-{secrets.token_hex(16)}",
        cloud_token=f"canary-cloud-{secrets.token_hex(16)}",
    )
    stack.vault.write_values("dev", values.values)
    try:
        yield values
    finally:
        stack.vault.write_values("dev", previous)


def agent_programs(manifest: RunManifest) -> set[str]:
    """The programs the run's agents started (first word of each command)."""
    phases = (manifest.phases.get(name) for name in PhaseName)
    commands = (c.command for phase in phases for step in phase.steps for c in step.commands)
    programs = {command.split()[0] for command in commands if command.strip()}
    assert "python" in programs  # the builders' and the tester's test runs
    return programs


def git_history(repo: Path) -> str:
    """Every commit of every branch, messages and patches (git stores them compressed)."""
    return subprocess.run(
        ["git", "log", "--all", "--patch", "--format=%H%n%B"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


async def logs_of(flow_run_id: str) -> list[str]:
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


async def wait_for_logs(flow_run_id: str, *, ending: str, seconds: float = 15.0) -> None:
    """Wait until the flow run's last log line (``ending``) is in the Prefect database."""
    with anyio.fail_after(seconds):
        while True:
            if any(ending in message for message in await logs_of(flow_run_id)):
                return
            await anyio.sleep(0.1)


async def test_canary_secrets_stay_in_memory_through_a_full_run(
    stack: Stack,
    canary: Canary,
    own_runs_api: RunsApiServers,
    prefect_api: PrefectApi,
    tmp_path: Path,
) -> None:
    cloud = own_runs_api.start(canary.cloud_token)  # accepts the canary token only
    await CodexCloudEndpoint(base_url=cloud.url, workspace_id=CLOUD_WORKSPACE).asave(
        "canary", overwrite=True
    )
    config = replay_config(stack.replay.url)
    provider = config.provider.model_copy(update={"env_key": MODEL_KEY_ENV})
    await CodexServerSettings.from_config(config.model_copy(update={"provider": provider})).asave(
        "canary", overwrite=True
    )
    keep = CODEX_HOMES.parent / f"canary-codex-homes-{secrets.token_hex(6)}"

    try:
        with (
            captured_logs(tmp_path) as log_files,
            CmdlineWatch(canary.model_key, interval=0.05) as model_key_cmdlines,
            CmdlineWatch(canary.cloud_token, interval=0.05) as token_cmdlines,
            EnvironWatch(MODEL_KEY_ENV, canary.model_key) as environ,
            CodexHomeWatch(keep) as codex_homes,
        ):
            state = await pipeline(
                task_file=str(stack.task(TASK)),
                repo=str(stack.repo),
                codex_block="canary",
                cloud_block="canary",
                return_state=True,
            )
            summary: dict[str, Any] = await state.aresult()
            flow_run_id = str(state.state_details.flow_run_id)
            await wait_for_logs(flow_run_id, ending=f"{summary['run_id']} succeeded; manifest")

        # The secrets were really used: the model key by the codex servers, the token
        # by the Runs API that accepts nothing else. No command an agent ran inherited
        # the key (codex's own OS probe, lsb_release through sh, does: not ours to set).
        assert (summary["status"], summary["sync"]) == ("succeeded", "synced"), summary
        assert "codex" in environ.holders
        manifest = stack.workspace.store.read(summary["task_id"], summary["run_id"])
        assert environ.holders.isdisjoint({"bash", "bwrap", *agent_programs(manifest)})
        assert [run_id for _, run_id in cloud.run_ids()] == [summary["run_id"]]
        # The scan of the CODEX_HOMEs means something: the sessions' files were kept.
        assert len(codex_homes.homes) >= 4  # plan, two builders, test, review
        for home in codex_homes.homes:
            assert any(p.name.startswith("config.toml.") for p in home.iterdir()), home
        assert any(codex_homes.keep.rglob("rollout-*.jsonl.*"))

        for log_file in log_files:  # the capture worked: it has the run's last line
            assert f"{summary['run_id']} succeeded; manifest" in log_file.read_text(), log_file
        places = [
            stack.workspace.settings.home,  # .runs/, out/, work/ (the worktrees)
            stack.repo,
            prefect_api.home,
            prefect_api.database.parent,  # the SQLite database and its -wal, -shm
            codex_homes.keep,
            *log_files,
            cloud.server.log_path.parent,  # its database and log
            Path.home() / ".vault-token",
        ]
        history = git_history(stack.repo)
        assert manifest.result is not None and manifest.result.commit in history
        for name, secret in canary.values.items():
            assert scan_paths_for(secret, places) == [], name
            assert secret not in history, name
            assert scan_cmdlines_for(secret) == [], name
        assert model_key_cmdlines.hits == [] and token_cmdlines.hits == []
        assert not (Path.home() / ".vault-token").exists()
    finally:
        shutil.rmtree(keep, ignore_errors=True)


# -- Vault failing before a run ------------------------------------------------------


@dataclass(frozen=True)
class VaultFailure:
    cause: str
    hidden: list[str]
    """Every secret the failing set-up involves: none may show anywhere."""


@pytest.fixture(params=["down", "sealed", "forbidden", "missing_key"])
def vault_failure(
    request: pytest.FixtureRequest, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[VaultFailure]:
    """Blocks 'failing' (Vault) and 'needs-key' (codex, model key from Vault) set up so
    that opening the dev credentials fails with the parametrized cause."""
    config = replay_config(stack.replay.url)
    provider = config.provider.model_copy(update={"env_key": MODEL_KEY_ENV})
    CodexServerSettings.from_config(config.model_copy(update={"provider": provider})).save(
        "needs-key", overwrite=True
    )
    cause: str = request.param
    if cause == "forbidden":  # prod's AppRole asking for dev's secret
        yield _failing_block(stack.vault, "prod", cause, monkeypatch)
        return
    values = {"dev": {CLOUD_TOKEN: f"cloud-only-{secrets.token_hex(12)}"}}
    with DevVault(envs=("dev",), values=values if cause == "missing_key" else None) as own:
        failure = _failing_block(own, "dev", cause, monkeypatch)
        if cause == "sealed":
            own.admin_client().sys.seal()
        elif cause == "down":
            own.stop()  # the server stopped before the run
        yield failure


def _failing_block(
    vault: DevVault, role_env: str, cause: str, monkeypatch: pytest.MonkeyPatch
) -> VaultFailure:
    login = vault.approle(role_env)
    secret_id = login.secret_id.get_secret_value()
    monkeypatch.setenv(DEFAULT_SECRET_ID_ENV, secret_id)
    VaultCredentials(address=vault.address, role_id=login.role_id).save("failing", overwrite=True)
    values = [v for env in vault.envs for v in vault.values(env).values()]
    return VaultFailure(cause, [secret_id, vault.root_token.get_secret_value(), *values])


async def test_a_failing_vault_fails_the_run_before_any_agent_call(
    stack: Stack, vault_failure: VaultFailure, prefect_api: PrefectApi
) -> None:
    requests_before = len(stack.replay.requests())

    state = await pipeline(
        task_file=str(stack.task(TASK)),
        repo=str(stack.repo),
        vault_block="failing",
        codex_block="needs-key",
        return_state=True,
    )

    # One clear error, with the cause, for the flow run and in the manifest.
    assert state.is_failed()
    error = await state.aresult(raise_on_failure=False)
    assert isinstance(error, CredentialError) and error.cause == vault_failure.cause, error
    assert state.message == f"Flow run encountered an exception: CredentialError: {error}"
    (ref,) = stack.workspace.store.list_runs()
    manifest = stack.workspace.store.read(ref.task_id, ref.run_id)
    assert (manifest.status, manifest.status_reason) == (RunStatus.FAILED, str(error))
    assert [(e.type, e.message) for e in manifest.errors] == [("CredentialError", str(error))]
    # Ended by an exception, the run still gets its last step: the mirror is tried and
    # its failure recorded for the backlog.
    assert manifest.sync is not None and manifest.sync.state.value == "failed"
    # Before any agent call: no model request, no agent step started.
    assert len(stack.replay.requests()) == requests_before
    assert [s.id for name in PhaseName for s in manifest.phases.get(name).steps] == []

    # Nothing secret in the message, the run's files or the Prefect database.
    await wait_for_logs(str(state.state_details.flow_run_id), ending="Finished in state Failed")
    places = [stack.workspace.settings.home, prefect_api.database.parent]
    for secret in vault_failure.hidden:
        assert secret not in str(error) and secret not in (state.message or "")
        assert scan_paths_for(secret, places) == []
