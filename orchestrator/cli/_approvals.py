"""Commands for approvers: ``orchestrator approvals``, ``approve`` and ``reject``.

Everything goes through the Prefect API named by PREFECT_API_URL, never the local
``.runs/``, so an approver decides from any process or machine that reaches the API:

- a gate waits in a *paused* flow run whose pause key is the approval id, next to the
  flow run input ``orchestrator-gate-<approval id>`` naming the run and the gate
  (:class:`flows.gates.GateNotice`); the form's description is the input
  ``paused-<approval id>-description``;
- a decision resumes that flow run with the form's input (``channel: cli``); the Prefect
  server validates it against the form's schema (a reason is required to reject);
- a decided gate leaves ``orchestrator-decision-<approval id>``, which explains why a
  second decision is refused.

Exit codes: 0 done; 2 bad input, nothing changed (an unknown run, a run not waiting, a
gate already decided or timed out, a rejection without a reason, a form the server
refuses); 1 the Prefect API failed.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.markdown import Markdown
from rich.table import Table

from orchestrator.exceptions import (
    ApprovalError,
    InvalidInputError,
    OrchestratorError,
    RunNotFoundError,
)
from schemas import ApprovalDecision, Channel, Decision, utc_now

from ._console import console

if TYPE_CHECKING:  # the CLI imports Prefect and the flows only inside the commands
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

    from flows.gates import DecisionNotice, GateNotice

T = TypeVar("T")

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
MAX_RUNS = 200


def register(app: typer.Typer) -> None:
    app.command()(approvals)
    app.command()(approve)
    app.command()(reject)


def default_approver() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- commands ----------------------------------------------------------------------


def approvals(
    run: Annotated[
        str | None, typer.Argument(help="Only this run, and show what each gate shows.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """List the runs waiting for a decision and what each waits for (Prefect API)."""
    waiting = _call(lambda client: _waiting_with_descriptions(client, run))
    if as_json:
        typer.echo(json.dumps([w.as_json() for w, _ in waiting], indent=2))
        return
    if not waiting:
        console.print("no run is waiting for a decision" + (f" (run {run})" if run else ""))
        return
    console.print(_waiting_table([w for w, _ in waiting]))
    for gate, description in waiting if run else []:
        console.rule(f"{gate.notice.label}: {gate.notice.approval_id}")
        console.print(Markdown(description or "(no description)"))
    console.print(
        "decide: orchestrator approve RUN [--gate GATE] [--reason TEXT]  |  "
        "orchestrator reject RUN --reason TEXT [--gate GATE]"
    )


def approve(
    run: RunArg,
    gate: GateOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (optional).")] = "",
    approver: ApproverOption = "",
) -> None:
    """Approve what a paused run waits for, resuming it through the Prefect API."""
    _decide(run, gate, Decision.APPROVE, reason, approver)


def reject(
    run: RunArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (required).", show_default=False)],
    gate: GateOption = None,
    approver: ApproverOption = "",
) -> None:
    """Reject what a paused run waits for (a reason is required); the run goes on without it."""
    _decide(run, gate, Decision.REJECT, reason, approver)


def _decide(run: str, gate: str | None, decision: Decision, reason: str, approver: str) -> None:
    try:
        chosen = ApprovalDecision(
            decision=decision,
            approver=(approver or default_approver()).strip(),
            reason=reason.strip(),
            channel=Channel.CLI,
        )
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise InvalidInputError(f"{decision.value} {run}: {problems}") from None
    resumed = _call(lambda client: decide(client, run, gate, chosen))
    verb = "approved" if decision is Decision.APPROVE else "rejected"
    console.print(
        f"{verb} [bold]{resumed.notice.approval_id}[/bold] of {resumed.notice.label} as "
        f"{chosen.approver} (cli); flow run '{resumed.flow_run_name}' resumes"
    )
    if resumed.ui_url:
        console.print(resumed.ui_url)


def _call(work: Callable[[PrefectClient], Awaitable[T]]) -> T:
    """Run ``work`` with a Prefect API client; API failures become our errors."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    async def main() -> T:
        async with get_client() as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
        raise OrchestratorError(f"the Prefect API at {_api_url()} failed: {exc}") from None


# -- what waits --------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingGate:
    """One gate a paused flow run waits at."""

    flow_run_id: UUID
    flow_run_name: str
    notice: GateNotice
    expires_at: datetime | None
    paused_at: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utc_now()

    @property
    def ui_url(self) -> str | None:
        from prefect.settings import PREFECT_UI_URL

        base = PREFECT_UI_URL.value()
        return f"{base.rstrip('/')}/runs/flow-run/{self.flow_run_id}" if base else None

    def matches(self, run: str) -> bool:
        """Named by ``run``: its run id, ``<task>/<run>``, or its flow run id."""
        return run in (self.notice.run_id, self.notice.label, str(self.flow_run_id))

    def as_json(self) -> dict[str, Any]:
        return {
            **self.notice.model_dump(mode="json"),
            "flow_run_id": str(self.flow_run_id),
            "flow_run_name": self.flow_run_name,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "expired": self.expired,
            "ui_url": self.ui_url,
        }


async def waiting_gates(client: PrefectClient, run: str | None = None) -> list[WaitingGate]:
    """Every gate a paused flow run waits at (of ``run`` only, when given), oldest first."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    paused = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
        ),
        limit=MAX_RUNS,
    )
    found = [await _gate_of(client, flow_run) for flow_run in paused]
    gates = [g for g in found if g is not None and (run is None or g.matches(run))]
    return sorted(_newest_pauses(gates), key=lambda g: g.notice.requested_at)


def _newest_pauses(gates: list[WaitingGate]) -> list[WaitingGate]:
    """One entry per gate of a run: a resumed run asks again from a new flow run, and the
    flow run of a process that died while it waited stays paused; the newest pause wins."""
    newest: dict[tuple[str, str, str], WaitingGate] = {}
    for gate in sorted(gates, key=lambda g: g.paused_at):
        newest[(gate.notice.task_id, gate.notice.run_id, gate.notice.approval_id)] = gate
    return list(newest.values())


async def _gate_of(client: PrefectClient, flow_run: FlowRun) -> WaitingGate | None:
    from flows.gates import GATE_INPUT_PREFIX, GateNotice

    state = flow_run.state
    key = state.state_details.pause_key if state else None
    if state is None or not key:
        return None
    inputs = await client.filter_flow_run_input(
        flow_run.id, GATE_INPUT_PREFIX + key, limit=1, exclude_keys=set()
    )
    try:
        notice = GateNotice.model_validate(inputs[0].decoded_value) if inputs else None
    except ValidationError:
        notice = None
    if notice is None:
        return None  # paused, but not by one of our gates
    return WaitingGate(
        flow_run_id=flow_run.id,
        flow_run_name=flow_run.name,
        notice=notice,
        expires_at=state.state_details.pause_timeout,
        paused_at=state.timestamp,
    )


async def _waiting_with_descriptions(
    client: PrefectClient, run: str | None
) -> list[tuple[WaitingGate, str]]:
    gates = await waiting_gates(client, run)
    if run is None:
        return [(g, "") for g in gates]
    if not gates:
        raise await not_waiting_error(client, run, None)
    return [(g, await description_of(client, g)) for g in gates]


async def description_of(client: PrefectClient, gate: WaitingGate) -> str:
    """The markdown the gate's form shows."""
    key = f"paused-{gate.notice.approval_id}-description"
    inputs = await client.filter_flow_run_input(gate.flow_run_id, key, limit=1, exclude_keys=set())
    value = inputs[0].decoded_value if inputs else ""
    return value if isinstance(value, str) else ""


# -- deciding ----------------------------------------------------------------------


async def decide(
    client: PrefectClient, run: str, gate: str | None, decision: ApprovalDecision
) -> WaitingGate:
    """Resume the flow run that waits at ``run``'s gate with ``decision``.

    Raises:
        RunNotFoundError: no flow run of ``run`` is known to the Prefect API.
        ApprovalError: the run is not waiting (at that gate), waits at several gates and
            none was chosen, the gate timed out, or the server refused the decision.
    """
    waiting = await waiting_gates(client, run)
    chosen = select_gate(waiting, run, gate)
    if chosen is None:
        raise await not_waiting_error(client, run, gate)
    if chosen.expired:
        raise ApprovalError(
            f"the {chosen.notice.approval_id} gate of {chosen.notice.label} timed out at "
            f"{chosen.expires_at:%Y-%m-%d %H:%M:%S} UTC; it counts as rejected (timeout)",
            run_id=chosen.notice.run_id,
            gate=chosen.notice.approval_id,
        )
    await _resume(client, chosen, decision)
    return chosen


def select_gate(waiting: list[WaitingGate], run: str, gate: str | None) -> WaitingGate | None:
    """The one waiting gate that ``gate`` names (any, when None); None when none does.

    Raises:
        ApprovalError: several gates match; the message lists them.
    """
    matching = [
        w for w in waiting if gate is None or gate in (w.notice.gate.value, w.notice.approval_id)
    ]
    if len(matching) > 1:
        names = ", ".join(f"{w.notice.approval_id} ({w.notice.summary})" for w in matching)
        raise ApprovalError(
            f"run {run} waits at {len(matching)} gates; choose one with --gate: {names}",
            run_id=run,
            gate=gate,
        )
    return matching[0] if matching else None


async def _resume(client: PrefectClient, gate: WaitingGate, decision: ApprovalDecision) -> None:
    from prefect.client.schemas.responses import SetStateStatus

    result = await client.resume_flow_run(
        gate.flow_run_id,
        run_input={
            "decision": decision.decision.value,
            "approver": decision.approver,
            "reason": decision.reason,
            "channel": Channel.CLI.value,
        },
    )
    if result.status is not SetStateStatus.ACCEPT:
        reason = getattr(result.details, "reason", None) or result.status.value
        raise ApprovalError(
            f"the Prefect API refused to resume {gate.notice.label} at "
            f"{gate.notice.approval_id}: {reason}",
            run_id=gate.notice.run_id,
            gate=gate.notice.approval_id,
        )


async def not_waiting_error(client: PrefectClient, run: str, gate: str | None) -> OrchestratorError:
    """Why ``run`` cannot be decided (at ``gate``): unknown, already decided, or not waiting."""
    flow_runs = await _flow_runs_of(client, run)
    if not flow_runs:
        return RunNotFoundError(
            f"unknown run {run!r}: no flow run of it in the Prefect API at {_api_url()}",
            run_id=run,
        )
    decided = await _decisions(client, flow_runs)
    waiting = await waiting_gates(client, run)
    for approval_id, (notice, decision) in decided.items():
        if gate in (approval_id, notice.gate.value):
            return ApprovalError(
                f"the {approval_id} gate of {notice.label} was already decided: "
                f"{_decided_text(decision)}",
                run_id=notice.run_id,
                gate=approval_id,
            )
    where = f" at gate {gate!r}" if gate else ""
    if waiting:
        detail = "; it waits at " + ", ".join(w.notice.approval_id for w in waiting)
    elif decided:
        detail = "; decided so far: " + ", ".join(
            f"{a} ({_decided_text(d)})" for a, (_, d) in decided.items()
        )
    else:
        detail = ""
    return ApprovalError(f"run {run} is not waiting for a decision{where}{detail}", run_id=run)


async def _flow_runs_of(client: PrefectClient, run: str) -> list[FlowRun]:
    """The flow runs of ``run`` (named ``<task>/<run>`` and ``<phase> <task>/<run>``)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterName

    try:
        by_id = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run)]))
        return await client.read_flow_runs(flow_run_filter=by_id, limit=1)
    except ValueError:
        pass
    like = FlowRunFilter(name=FlowRunFilterName(like_=run))
    named = await client.read_flow_runs(flow_run_filter=like, limit=MAX_RUNS)
    suffix = run if "/" in run else f"/{run}"
    return [f for f in named if f.name == run or f.name.endswith(suffix)]


async def _decisions(
    client: PrefectClient, flow_runs: list[FlowRun]
) -> dict[str, tuple[GateNotice, DecisionNotice]]:
    """Every decided gate of these flow runs, by approval id."""
    from flows.gates import DECISION_INPUT_PREFIX, GATE_INPUT_PREFIX, DecisionNotice, GateNotice

    decided: dict[str, tuple[GateNotice, DecisionNotice]] = {}
    for flow_run in flow_runs:
        inputs = await client.filter_flow_run_input(
            flow_run.id, "orchestrator-", limit=MAX_RUNS, exclude_keys=set()
        )
        values = {i.key: i.decoded_value for i in inputs}
        for key, value in values.items():
            if not key.startswith(DECISION_INPUT_PREFIX):
                continue
            approval_id = key.removeprefix(DECISION_INPUT_PREFIX)
            try:
                decided[approval_id] = (
                    GateNotice.model_validate(values.get(GATE_INPUT_PREFIX + approval_id)),
                    DecisionNotice.model_validate(value),
                )
            except ValidationError:
                continue  # not one of ours after all
    return decided


def _decided_text(decision: DecisionNotice) -> str:
    reason = f": {decision.reason}" if decision.reason else ""
    return (
        f"{decision.decision.value} by {decision.approver} ({decision.channel.value}) at "
        f"{decision.decided_at:%Y-%m-%d %H:%M:%S} UTC{reason}"
    )


# -- printing ----------------------------------------------------------------------


def _waiting_table(gates: list[WaitingGate]) -> Table:
    table = Table("run", "gate", "waiting for", "since (UTC)", "expires")
    table.add_column("flow run", overflow="fold")
    for g in gates:
        table.add_row(
            g.notice.label,
            g.notice.approval_id,
            g.notice.summary,
            f"{g.notice.requested_at:%Y-%m-%d %H:%M:%S}",
            _expires_text(g),
            g.ui_url or str(g.flow_run_id),
        )
    return table


def _expires_text(gate: WaitingGate) -> str:
    if gate.expires_at is None:
        return "-"
    if gate.expired:
        return "[red]timed out[/red]"
    seconds = int((gate.expires_at - utc_now()).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return f"in {minutes}m {seconds:02d}s" if minutes else f"in {seconds}s"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or "(ephemeral: PREFECT_API_URL is not set)"
