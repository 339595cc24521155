"""``orchestrator setup automations``: what a Prefect server needs for our runs.

The automation that sets a flow run Crashed when its process died
(:mod:`flows.heartbeats`), and, given a notification block, the two that tell people a
run waits for them and that a gate's deadline is near (:mod:`flows.notifications`).
Create them once per server (``make serve`` does it for the dev stack); running it again
changes nothing, or updates what changed. Prefect is imported inside the command:
``orchestrator --help`` does not pay for it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.settings import Settings

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
    notify_block: Annotated[
        str | None,
        typer.Option(
            "--notify-block",
            help="A notification block saved on the server, as <block type>/<name> (e.g. "
            "custom-webhook/approvers, slack-webhook/approvers): notify through it when a "
            "run waits for a person and before a gate's deadline (default: "
            "ORCHESTRATOR_NOTIFY_BLOCK; none: no notifications).",
        ),
    ] = None,
) -> None:
    """Create or update, on the server of PREFECT_API_URL, the automation that sets
    Crashed the flow runs of ours whose process died (killed, machine lost); with a
    notification block, also the two that notify people when a run waits for them at a
    gate and ORCHESTRATOR_GATE_WARNING_SECONDS (default 600) before its deadline."""
    from flows.approvals import run_with_client
    from flows.heartbeats import AUTOMATION_NAME, ensure_crash_automation

    block = notify_block or Settings().notify_block
    if block:  # checked first: a wrong block name changes nothing on the server
        from flows.notifications import notify_block_id

        run_with_client(notify_block_id, block)
    automation_id, outcome = run_with_client(
        ensure_crash_automation, crash_after_seconds=crash_after
    )
    _print(
        f"automation '{AUTOMATION_NAME}' {outcome} ({automation_id}): a flow run silent "
        f"{crash_after} s after a heartbeat is set Crashed"
    )
    if not block:
        _print("no notifications: give --notify-block (docs/approvals.md, 'Notifications')")
        return
    from flows.notifications import ensure_notify_automations

    for name, notify_id, notify_outcome in run_with_client(ensure_notify_automations, block=block):
        _print(f"automation '{name}' {notify_outcome} ({notify_id}): notifies through {block}")


def _print(line: str) -> None:
    console.print(line, markup=False, soft_wrap=True)
