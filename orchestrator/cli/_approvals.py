"""Commands for approvers: ``orchestrator approvals``, ``approve`` and ``reject``.

Parse, call :mod:`flows.approvals`, print. Everything goes through the Prefect API named
by PREFECT_API_URL, so an approver decides from any process or machine that reaches the
API (where this machine holds the run's manifest, a gate it records decided is
refused). Prefect and the flows are imported inside the commands: ``orchestrator
--help`` does not pay for them. Every UI link printed comes from :mod:`flows.ui_links`:
it opens the UI a person lands on (Prefect's V2 UI).

Exit codes: 0 done; 2 bad input, nothing changed (an unknown run, a run not waiting, a
gate already decided or timed out, a rejection without a reason, a form the server
refuses); 1 the Prefect API failed.
"""

from __future__ import annotations

import getpass
import json
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich import box
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
        help="plan, handover, command, budget, or an approval id; needed when a run waits "
        "at several.",
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
    task: Annotated[str | None, typer.Option("--task", help="Only runs of this task id.")] = None,
    gate: Annotated[
        str | None,
        typer.Option("--gate", help="Only this gate: plan, handover, command, budget or an id."),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only runs of this environment.")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh the list until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between refreshes (--watch).")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """List every gate waiting for a decision, across runs, soonest deadline first.

    Each gate links to its paused flow run in the Prefect UI (Resume is in the run page's
    ⋮ menu); the last line links to the UI's list of every paused run.
    """
    from flows.approvals import gates_of_run, run_with_client, waiting_gates

    def listing() -> list[WaitingGate]:
        gates = run_with_client(gates_of_run, run) if run else run_with_client(waiting_gates)
        return inbox(gates, task=task, gate=gate, env=env)

    if watch:
        _watch(listing, interval)
        return
    gates = listing()
    if as_json:
        typer.echo(json.dumps([_as_json(g) for g in gates], indent=2))
        return
    _print_inbox(gates)
    if run:
        _print_descriptions(gates)


def inbox(
    gates: list[WaitingGate], *, task: str | None, gate: str | None, env: str | None
) -> list[WaitingGate]:
    """The gates the filters keep, soonest deadline first (no deadline last)."""
    kept = [
        g
        for g in gates
        if task in (None, g.notice.task_id) and g.is_gate(gate) and env in (None, g.notice.env)
    ]
    return sorted(kept, key=lambda g: (g.expires_at is None, g.expires_at or g.paused_at))


def _watch(listing: Callable[[], list[WaitingGate]], interval: float) -> None:
    """Print the inbox again every ``interval`` seconds until Ctrl-C (exit code 0).

    Ctrl-C sets a flag that the loop reads between refreshes: left to ``asyncio.run``'s
    own handler, a Ctrl-C during a refresh cancels the client's request, which may
    swallow the cancellation, and the loop went on refreshing. A second Ctrl-C stops a
    refresh that hangs.
    """
    stop = threading.Event()

    def on_ctrl_c(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        while not stop.is_set():
            gates = listing()
            console.clear()  # a no-op unless stdout is a terminal
            console.print(
                f"{len(gates)} waiting at {utc_now():%H:%M:%S} UTC; refreshed every "
                f"{interval:g} s, Ctrl-C to stop"
            )
            _print_inbox(gates)
            stop.wait(interval)  # the refresh period a person asked for, not a wait
    except KeyboardInterrupt:
        return
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_inbox(gates: list[WaitingGate]) -> None:
    from flows.ui_links import flow_run_url, paused_runs_url

    if not gates:
        console.print("no run is waiting for a decision")
        return
    table, with_summary = _waiting_table(gates, width=console.width)
    console.print(table)
    for g in gates:
        # soft wrap: a long id or link is never broken by an inserted newline: it copies whole
        console.print(Text(f"{g.notice.label} {g.notice.approval_id}"), soft_wrap=True)
        if not with_summary:
            console.print(Text(f"  waits for: {terminal_text(g.notice.summary)}"))
        link = flow_run_url(g.flow_run_id) or f"flow run {g.flow_run_id}"
        console.print(Text(f"  {link}"), soft_wrap=True)
    console.print(DECIDE_HINT, soft_wrap=True)
    if listed := paused_runs_url():
        console.print(Text(f"paused runs in the Prefect UI: {listed}"), soft_wrap=True)


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
    from flows.ui_links import flow_run_url

    resumed = run_with_client(decide, run, decision, gate=gate)
    verb = "approved" if decision.decision is Decision.APPROVE else "rejected"
    console.print(
        f"{verb} [bold]{resumed.notice.approval_id}[/bold] of {resumed.notice.label} as "
        f"{decision.approver} (cli); flow run '{resumed.flow_run_name}' resumes"
    )
    if link := flow_run_url(resumed.flow_run_id):
        console.print(Text(link))


# -- printing ----------------------------------------------------------------------


def _as_json(gate: WaitingGate) -> dict[str, Any]:
    from flows.ui_links import flow_run_url

    return {
        **gate.notice.model_dump(mode="json"),
        "flow_run_id": str(gate.flow_run_id),
        "flow_run_name": gate.flow_run_name,
        "expires_at": gate.expires_at.isoformat() if gate.expires_at else None,
        "expired": gate.expired,
        "ui_url": flow_run_url(gate.flow_run_id),
    }


SUMMARY_MIN_WIDTH = 20
"""Narrower than this, what a gate waits for is listed under the table instead."""


def _waiting_table(gates: list[WaitingGate], *, width: int) -> tuple[Table, bool]:
    """Run (task/run id, whole on one line whenever it fits), gate, deadline, and what it
    waits for when there is room; True with it when that column is in the table."""
    run_width = max(len(g.notice.label) for g in gates)
    gate_width = max(len(g.notice.approval_id) for g in gates)
    whole = run_width + gate_width + 9 + 6 <= width  # 9: the deadline; 6: the padding
    with_summary = whole and width - (run_width + gate_width + 9 + 8) >= SUMMARY_MIN_WIDTH
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", no_wrap=whole, min_width=run_width if whole else None)
    table.add_column("gate", no_wrap=whole, overflow="fold")
    table.add_column("due (UTC)", no_wrap=True, max_width=9)
    if with_summary:
        table.add_column("waiting for", overflow="fold", ratio=1)
    for g in gates:
        cells = [Text(terminal_text(g.notice.label)), Text(g.notice.approval_id)]
        cells.append(_deadline_text(g))
        if with_summary:  # may quote what an agent wrote: shown as text, never markup
            cells.append(Text(terminal_text(g.notice.summary)))
        table.add_row(*cells)
    return table, with_summary


def _print_descriptions(gates: list[WaitingGate]) -> None:
    from rich.markdown import Markdown  # ~60 ms; only the listing of one run renders it

    for gate in gates:
        console.rule(f"{gate.notice.label}: {gate.notice.approval_id}")
        console.print(Markdown(gate.description or "(no description)"))


def _deadline_text(gate: WaitingGate) -> Text:
    if gate.expires_at is None:
        return Text("-")
    at = f"{gate.expires_at:%H:%M:%S}"
    if gate.expired:
        return Text(f"{at}\ntimed out", style="red")
    seconds = int((gate.expires_at - utc_now()).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    left = f"in {minutes}m{seconds:02d}s" if minutes else f"in {seconds}s"
    return Text(f"{at}\n{left}")
