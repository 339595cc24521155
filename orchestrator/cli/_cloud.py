"""Commands for the Codex Cloud mirror: ``cloud serve`` and ``sync``.

``sync`` parses, calls :mod:`flows.cloud_client` (imported when it runs) and prints; the
Runs API endpoint and token come from the environment or the blocks and Vault, in the
order that module documents.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.exceptions import InvalidInputError, OrchestratorError
from orchestrator.sync import SyncSummary
from orchestrator.workspace import Workspace
from schemas import SyncRecord, SyncState

from ._console import console
from ._core import DEFAULT_BLOCK

cloud_app = typer.Typer(
    help="The reference Codex Cloud Runs API server (for development, tests and demos).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(cloud_app, name="cloud")
    app.command()(sync)


@cloud_app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    db: Annotated[
        Path | None,
        typer.Option(help="SQLite file of imported runs [default: out/runs-api.sqlite3]."),
    ] = None,
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding the bearer token.")
    ] = "ORCHESTRATOR_CLOUD_TOKEN",
    faults: Annotated[
        str | None,
        typer.Option(help='Fault plan as JSON, e.g. \'{"fail_next": 2, "fail_status": 429}\'.'),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    max_body_bytes: Annotated[
        int, typer.Option(help="Larger request bodies are answered 413 (4 MiB).", min=1)
    ] = 4 * 1024 * 1024,
) -> None:
    """Serve the reference Runs API until Ctrl-C or SIGTERM. The token is read from TOKEN_ENV."""
    from devstack import runs_api  # the dev stack: imported only by this command

    token = runs_api.token_from_env(token_env)
    plan = runs_api.parse_faults(faults)
    db_path = db or Workspace.open().settings.out_dir / "runs-api.sqlite3"
    runs_api.serve(
        port=port,
        db_path=db_path,
        token=token,
        host=host,
        faults=plan,
        access_log=access_log,
        max_body_bytes=max_body_bytes,
        on_ready=lambda url: console.print(f"Runs API listening on {url} (database {db_path})"),
    )


def sync(
    run: Annotated[
        str | None, typer.Argument(help="Run id, or <task-id>/<run-id>.", show_default=False)
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Retry every pending or failed run (the backlog).")
    ] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="With --pending: only runs of this environment, with its token; default: "
            "ORCHESTRATOR_ENV's runs (every run with ORCHESTRATOR_CLOUD_TOKEN).",
        ),
    ] = None,
    cloud_block: Annotated[
        str, typer.Option(help="Codex Cloud endpoint block, unless ORCHESTRATOR_CLOUD_URL.")
    ] = DEFAULT_BLOCK,
    vault_block: Annotated[
        str,
        typer.Option(
            help="Vault credentials block, unless ORCHESTRATOR_VAULT_ADDRESS or "
            "ORCHESTRATOR_CLOUD_TOKEN."
        ),
    ] = DEFAULT_BLOCK,
) -> None:
    """Mirror a finished run (or the backlog) to the Runs API.

    The endpoint is ORCHESTRATOR_CLOUD_URL and ORCHESTRATOR_CLOUD_WORKSPACE, else the
    Codex Cloud endpoint block. The token is ORCHESTRATOR_CLOUD_TOKEN, else the run's
    environment's Vault secret, read as the flows read it: Vault from
    ORCHESTRATOR_VAULT_ADDRESS (and ORCHESTRATOR_VAULT_ROLE_ID ...) or the Vault
    credentials block, logging in with ORCHESTRATOR_VAULT_SECRET_ID or VAULT_TOKEN.
    Exits 1 when a run could not be synced.
    """
    if (run is None) == (not pending):
        raise InvalidInputError("give either a run or --pending")
    if env is not None and not pending:
        raise InvalidInputError("--env goes with --pending")
    from flows.cloud_client import CloudSources, mirror, mirror_backlog

    workspace = Workspace.open()
    sources = CloudSources.from_environment(cloud_block=cloud_block, vault_block=vault_block)
    if run is not None:
        summary = _summary_of(asyncio.run(mirror(workspace, run, sources)))
    else:
        summary = asyncio.run(mirror_backlog(workspace, sources, env=env))
    _report(summary)


def _summary_of(record: SyncRecord) -> SyncSummary:
    summary = SyncSummary()
    (summary.synced if record.state is SyncState.SYNCED else summary.failed).append(record)
    return summary


def _report(summary: SyncSummary) -> None:
    records = summary.synced + summary.failed
    if records:
        table = Table("task", "run", "state", "attempts", "cloud run", "last error")
        for r in records:
            state = r.state.value if r.state is SyncState.SYNCED else f"[red]{r.state.value}[/red]"
            table.add_row(
                r.task_id,
                r.run_id,
                state,
                str(r.attempts),
                r.cloud_run_id or "",
                r.last_error or "",
            )
        console.print(table)
    for error in summary.errors:
        console.print(f"[red]error[/red] {error}")
    left = (
        f", {len(summary.other_env)} of other environments left alone" if summary.other_env else ""
    )
    console.print(
        f"{len(summary.synced)} synced, {len(summary.failed)} failed, "
        f"{len(summary.errors)} not tried{left}"
    )
    if not summary.ok:
        raise OrchestratorError(
            f"{len(summary.failed) + len(summary.errors)} run(s) not synced; "
            "'orchestrator sync --pending' retries them"
        )
