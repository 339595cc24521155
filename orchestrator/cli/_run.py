"""Commands that run the pipeline: ``orchestrator run`` and ``orchestrator resume``.

Both run the manager flow in this process, against the Prefect API named by
PREFECT_API_URL or, without it, Prefect's ephemeral mode. Inputs are checked
before Prefect starts, so a bad task file or target changes nothing.

In ephemeral mode Prefect starts a temporary server and gives it
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (20 s by default) to answer; a
cold one creates its SQLite database and runs its migrations first, which takes about
that long on a busy machine. So the run says what it waits for and allows at least
:data:`EPHEMERAL_STARTUP_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from orchestrator.exceptions import OrchestratorError, RunFailedError
from orchestrator.gitops import check_target
from orchestrator.lifecycle import check_run_id
from orchestrator.runstore import RunRef
from orchestrator.settings import Settings
from orchestrator.taskspec import load_task_spec, resolve_repo
from orchestrator.usage import cost_text, usage_line
from orchestrator.workspace import Workspace
from schemas import RunManifest, RunStatus

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

from ._console import console, err_console
from ._core import RunArg, TaskArg

DEFAULT_BLOCK = "default"
EPHEMERAL_STARTUP_SECONDS = 300

EnvOption = Annotated[
    str, typer.Option("--env", help="Environment: Vault secret path and approval policy.")
]
CodexBlock = Annotated[str, typer.Option(help="Codex server settings block name.")]
VaultBlock = Annotated[str, typer.Option(help="Vault credentials block name.")]
CloudBlock = Annotated[
    str, typer.Option(help="Codex Cloud endpoint block name; '' skips the mirror.")
]


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(resume)


def run(
    task: TaskArg,
    env: EnvOption = "dev",
    repo: Annotated[
        Path | None, typer.Option(help="Target repository instead of the one the task names.")
    ] = None,
    run_id: Annotated[str, typer.Option(help="Use this run id (default: generated).")] = "",
    codex_block: CodexBlock = DEFAULT_BLOCK,
    vault_block: VaultBlock = DEFAULT_BLOCK,
    cloud_block: CloudBlock = DEFAULT_BLOCK,
) -> None:
    """Run a task through plan, build, test and review, with progress, then a summary."""
    settings = Settings()  # a bad ORCHESTRATOR_* setting is refused before anything else
    spec = load_task_spec(task)
    if run_id:
        check_run_id(Workspace.open(settings), spec.id, run_id)
    check_target(repo.resolve() if repo else resolve_repo(spec, task), spec.target.base_branch)
    console.print(f"running task [bold]{spec.id}[/bold] (env {env}) ...")
    _run_pipeline(
        task_file=str(task.resolve()),
        env=env,
        run_id=run_id,
        repo=str(repo.resolve()) if repo else "",
        codex_block=codex_block,
        vault_block=vault_block,
        cloud_block=cloud_block,
    )


def resume(
    run: RunArg,
    codex_block: CodexBlock = DEFAULT_BLOCK,
    vault_block: VaultBlock = DEFAULT_BLOCK,
    cloud_block: CloudBlock = DEFAULT_BLOCK,
) -> None:
    """Continue a run from its manifest: steps recorded done are skipped."""
    workspace = Workspace.open(Settings())
    ref = workspace.store.find(run)
    manifest = workspace.store.read(ref.task_id, ref.run_id)
    console.print(f"resuming {ref.task_id}/{ref.run_id} ({manifest.status.value}) ...")
    _run_pipeline(
        task_file="",
        env=manifest.env,
        run_id=ref.run_id,
        repo="",
        codex_block=codex_block,
        vault_block=vault_block,
        cloud_block=cloud_block,
    )


def run_pipeline(**parameters: Any) -> str:
    """Run the manager flow in this process; the run id, whether the run succeeded or not.

    Raises:
        InvalidInputError: the flow refused its input before a run existed.
        OrchestratorError: the flow failed before a run existed.
    """
    from flows.heartbeats import heartbeat_settings
    from flows.pipeline import pipeline

    async def flow_state() -> State[Any]:
        return await pipeline(**parameters, return_state=True)

    with _ephemeral_margin(), heartbeat_settings(), _our_errors_without_tracebacks():
        state = asyncio.run(flow_state())
    if state.is_cancelled() and isinstance(data := state.result(raise_on_failure=False), dict):
        return str(data["run_id"])  # a stopped run: its summary rides on the named state
    try:
        summary: dict[str, Any] = state.result(raise_on_failure=True)
    except RunFailedError as exc:
        return exc.run_id
    return str(summary["run_id"])


def _our_error(record: logging.LogRecord) -> bool:
    """Whether the record carries one of our errors: as ``exc_info``, or as the traceback
    text the redacting log-record factory put in ``exc_text`` (its last line names it)."""
    if record.exc_info and record.exc_info[1] is not None:
        return isinstance(record.exc_info[1], OrchestratorError)
    last = (record.exc_text or "").rstrip().rpartition("\n")[2]
    return last.startswith(f"{OrchestratorError.__module__}.")


@contextlib.contextmanager
def _our_errors_without_tracebacks() -> Iterator[None]:
    """Prefect's console handler prints our own errors without their tracebacks.

    Prefect logs every failed task and flow run with its traceback. Ours carry their
    cause in their message (a full disk, a failed git command), so on the console the
    message is enough; anything else (a bug) keeps its traceback, and the Prefect API's
    log handler (the UI) keeps every one. The class is patched, not its instances:
    Prefect may build its handlers again while the flow starts.
    """
    from prefect.logging.handlers import PrefectConsoleHandler

    original = PrefectConsoleHandler.format

    def format_plainly(self: logging.Handler, record: logging.LogRecord) -> str:
        if not _our_error(record):
            return original(self, record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return original(self, record)
        finally:
            record.exc_info, record.exc_text = saved

    PrefectConsoleHandler.format = format_plainly  # type: ignore[method-assign]
    try:
        yield
    finally:
        PrefectConsoleHandler.format = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _ephemeral_margin() -> Iterator[None]:
    """Without a Prefect API URL: say so, and give the ephemeral server time to start."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        yield
        return
    seconds = max(
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), EPHEMERAL_STARTUP_SECONDS
    )
    console.print(
        "no PREFECT_API_URL: Prefect starts a temporary local server for this run (a first "
        f"start creates its database and can take a minute; allowing {seconds} s) ..."
    )
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: seconds}):
        yield


def _run_pipeline(**parameters: Any) -> None:
    run_id = run_pipeline(**parameters)
    manifest = print_outcome(Workspace.open(Settings()), run_id)
    if manifest.status is RunStatus.FAILED:
        raise RunFailedError(
            f"run {run_id} failed: {manifest.status_reason}",
            run_id=run_id,
            reason=manifest.status_reason or "unknown",
        )
    if manifest.status.stopped:
        verb = "expired" if manifest.status is RunStatus.EXPIRED else "was rejected"
        raise OrchestratorError(f"run {run_id} {verb}: {manifest.status_reason}")


def print_outcome(workspace: Workspace, run_id: str) -> RunManifest:
    ref: RunRef = workspace.store.find(run_id)
    manifest = workspace.store.read(ref.task_id, ref.run_id)
    table = Table(title=f"{ref.task_id}/{ref.run_id}: {manifest.status.value}", show_header=True)
    table.add_column("phase")
    table.add_column("status")
    table.add_column("steps")
    table.add_column("agent calls (ms)")
    table.add_column("tokens")
    table.add_column("cost")
    for name in ("plan", "build", "test", "review"):
        phase = getattr(manifest.phases, name)
        steps = ", ".join(f"{s.id}:{s.status.value}" for s in phase.steps)
        ms = sum(s.duration_ms or 0 for s in phase.steps)
        usage = phase.usage
        table.add_row(
            name,
            phase.status.value,
            steps,
            str(ms),
            str(usage.tokens.total_tokens),
            cost_text(usage.cost_usd),
        )
    console.print(table)
    console.print(f"usage: {usage_line(manifest.usage)}", highlight=False)
    result = manifest.result
    if result and result.branch:
        console.print(f"result branch: [bold]{result.branch}[/bold] ({(result.commit or '')[:12]})")
        if result.diff_stat:
            console.print(result.diff_stat)
    if manifest.status_reason:
        err_console.print(f"reason: {manifest.status_reason}")
    if manifest.sync:
        console.print(f"cloud sync: {manifest.sync.state.value}")
    console.print(f"manifest: {ref.manifest_path}")
    return manifest
