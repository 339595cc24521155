"""Commands for approvers: ``orchestrator approvals``, ``approve`` and ``reject``.

Parse, call :mod:`flows.approvals`, print. Everything goes through the Prefect API named
by PREFECT_API_URL, so an approver decides from any process or machine that reaches the
API (where this machine holds the run's manifest, a gate it records decided is
refused). Prefect and the flows are imported inside the commands: ``orchestrator
--help`` does not pay for them.

Exit codes: 0 done; 2 bad input, nothing changed (an unknown run, a run not waiting, a
gate already decided or timed out, a rejection without a reason, a form the server
refuses); 1 the Prefect API failed.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from orchestrator.exceptions import InvalidInputError
from orchestrator.literal import terminal_text
from schemas import ApprovalDecision, Channel, Decision, WaitingGate, utc_now

from ._console import console

RunArg = Annotated[
    str,
    typer.Argument(
        help="Run id, <task-id>/<run-id>, or the id of the paused flow run.", show_default=False
    ),
]
GateOption = Annotated[
    str | None,
    typer.Option(
        "--gate",
        help="plan, handover, command, or an approval id; needed when a run waits at several.",
    ),
]
ApproverOption = Annotated[
    str,
    typer.Option(
        "--approver", help="Your name, recorded with the decision; default: your OS user."
    ),
]
DECIDE_HINT = (
    "decide: orchestrator approve RUN [--gate GATE] [--reason TEXT]  |  "
    "orchestrator reject RUN --reason TEXT [--gate GATE]"
)


def register(app: typer.Typer) -> None:
    app.command()(approvals)
    app.command()(approve)
    app.command()(reject)


def approvals(
    run: Annotated[
        str | None, typer.Argument(help="Only this run, and show what each gate shows.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """List the runs waiting for a decision and what each waits for (Prefect API)."""
    from flows.approvals import gates_of_run, run_with_client, waiting_gates

    gates = run_with_client(gates_of_run, run) if run else run_with_client(waiting_gates)
    if as_json:
        typer.echo(json.dumps([_as_json(g) for g in gates], indent=2))
        return
    if not gates:
        console.print("no run is waiting for a decision")
        return
    console.print(_waiting_table(gates))
    if run:
        _print_descriptions(gates)
    console.print(DECIDE_HINT)


def approve(
    run: RunArg,
    gate: GateOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (optional).")] = "",
    approver: ApproverOption = "",
) -> None:
    """Approve what a paused run waits for, resuming it through the Prefect API."""
    _decide(run, gate, _decision(run, Decision.APPROVE, reason, approver))


def reject(
    run: RunArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (required).", show_default=False)],
    gate: GateOption = None,
    approver: ApproverOption = "",
) -> None:
    """Reject what a paused run waits for (a reason is required); the run goes on without it."""
    _decide(run, gate, _decision(run, Decision.REJECT, reason, approver))


def default_approver() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _decision(run: str, decision: Decision, reason: str, approver: str) -> ApprovalDecision:
    """The decision the options describe; refused before any API call when invalid."""
    try:
        return ApprovalDecision(
            decision=decision,
            approver=(approver or default_approver()).strip(),
            reason=reason.strip(),
            channel=Channel.CLI,
        )
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise InvalidInputError(f"{decision.value} {run}: {problems}") from None


def _decide(run: str, gate: str | None, decision: ApprovalDecision) -> None:
    from flows.approvals import decide, run_with_client

    resumed = run_with_client(decide, run, decision, gate=gate)
    verb = "approved" if decision.decision is Decision.APPROVE else "rejected"
    console.print(
        f"{verb} [bold]{resumed.notice.approval_id}[/bold] of {resumed.notice.label} as "
        f"{decision.approver} (cli); flow run '{resumed.flow_run_name}' resumes"
    )
    if resumed.ui_url:
        console.print(resumed.ui_url)


# -- printing ----------------------------------------------------------------------


def _as_json(gate: WaitingGate) -> dict[str, Any]:
    return {
        **gate.notice.model_dump(mode="json"),
        "flow_run_id": str(gate.flow_run_id),
        "flow_run_name": gate.flow_run_name,
        "expires_at": gate.expires_at.isoformat() if gate.expires_at else None,
        "expired": gate.expired,
        "ui_url": gate.ui_url,
    }


def _waiting_table(gates: list[WaitingGate]) -> Table:
    table = Table("run", "gate", "waiting for", "since (UTC)", "expires")
    table.add_column("flow run", overflow="fold")
    for g in gates:
        cells = (
            g.notice.label,
            g.notice.approval_id,
            g.notice.summary,  # may quote what an agent wrote: shown as text, never markup
            f"{g.notice.requested_at:%Y-%m-%d %H:%M:%S}",
            _expires_text(g),
            g.ui_url or str(g.flow_run_id),
        )
        table.add_row(*(Text(terminal_text(cell)) for cell in cells))
    return table


def _print_descriptions(gates: list[WaitingGate]) -> None:
    from rich.markdown import Markdown  # ~60 ms; only the listing of one run renders it

    for gate in gates:
        console.rule(f"{gate.notice.label}: {gate.notice.approval_id}")
        console.print(Markdown(gate.description or "(no description)"))


def _expires_text(gate: WaitingGate) -> str:
    if gate.expires_at is None:
        return "-"
    if gate.expired:
        return "[red]timed out[/red]"
    seconds = int((gate.expires_at - utc_now()).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return f"in {minutes}m {seconds:02d}s" if minutes else f"in {seconds}s"
