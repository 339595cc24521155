"""``orchestrator setup automations``: what a Prefect server needs for our runs.

Today that is the automation that sets a flow run Crashed when its process died
(:mod:`flows.heartbeats`): create it once per server (``make serve`` does it for the
dev stack); running it again changes nothing, or updates the window. Prefect is
imported inside the command: ``orchestrator --help`` does not pay for it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._console import console

setup_app = typer.Typer(
    help="Set up a Prefect server for Codex Orchestrator (idempotent).", no_args_is_help=True
)
CRASH_AFTER_SECONDS = 90


def register(app: typer.Typer) -> None:
    app.add_typer(setup_app, name="setup")


@setup_app.command("automations")
def automations(
    crash_after: Annotated[
        int,
        typer.Option(
            "--crash-after",
            help="Seconds after a flow run's last heartbeat (they come every 30 s) before "
            "it is set Crashed.",
        ),
    ] = CRASH_AFTER_SECONDS,
) -> None:
    """Create or update, on the server of PREFECT_API_URL, the automation that sets
    Crashed the flow runs of ours whose process died (killed, machine lost)."""
    from flows.approvals import run_with_client
    from flows.heartbeats import AUTOMATION_NAME, ensure_crash_automation

    automation_id, outcome = run_with_client(
        ensure_crash_automation, crash_after_seconds=crash_after
    )
    console.print(
        f"automation '{AUTOMATION_NAME}' {outcome} ({automation_id}): a flow run silent "
        f"{crash_after} s after a heartbeat is set Crashed",
        markup=False,
        soft_wrap=True,
    )
