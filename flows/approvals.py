"""The approvals inbox: what waits for a person, and deciding it, over the Prefect API.

The reading side of :mod:`flows.gates`. A gate that needs a person pauses its flow run
(pause key: the approval id) next to a :class:`~schemas.GateNotice`; once decided, a
:class:`~schemas.DecisionNotice` joins it. Everything here goes through the Prefect API
named by ``PREFECT_API_URL``, so an approver decides from any process or machine that
reaches the API; where this machine also holds the run's manifest, a gate it records
decided is refused even if a stale pause still shows in Prefect::

    async with prefect_api() as client:
        for gate in await waiting_gates(client):
            print(gate.notice.label, gate.notice.summary)
        await decide(client, "RUN", ApprovalDecision(decision=Decision.APPROVE, approver="ada"))

From synchronous code (the CLI), :func:`run_with_client` runs one of these functions
with a client of its own: ``run_with_client(waiting_gates, run="RUN")``.

A decision resumes the paused flow run with the form's input (:func:`flows.gates.form_input`),
announced first as a :class:`~schemas.ResumeNotice` so the gate records the channel
(``cli``); the Prefect server validates the input against the form's schema (a reason is
required to reject), and the paused flow records it in the manifest within its 1 s poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Concatenate, ParamSpec, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed
from pydantic import ValidationError

from orchestrator.exceptions import ApprovalError, OrchestratorError, RunNotFoundError
from orchestrator.runstore import load_manifest
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import (
    ApprovalDecision,
    DecidedGate,
    DecisionNotice,
    GateNotice,
    ResumeNotice,
    WaitingGate,
)

from .gates import form_input, resume_notice
from .ui_links import flow_run_url

MAX_RUNS = 200
"""At most this many flow runs are read per query (paused ones, or those of one run)."""

P = ParamSpec("P")
T = TypeVar("T")


# -- the client -----------------------------------------------------------------------


@asynccontextmanager
async def prefect_api() -> AsyncIterator[PrefectClient]:
    """A Prefect API client whose HTTP failures become one error naming the API.

    Raises:
        OrchestratorError: the Prefect API could not be reached or answered an error.
    """
    try:
        async with get_client() as client:
            yield client
    except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
        raise OrchestratorError(f"the Prefect API at {_api_url()} failed: {exc}") from None


def run_with_client(
    fn: Callable[Concatenate[PrefectClient, P], Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``fn(client, *args, **kwargs)`` with a client of :func:`prefect_api`, from sync code."""

    async def main() -> T:
        async with prefect_api() as client:
            return await fn(client, *args, **kwargs)

    return asyncio.run(main())


# -- what waits -----------------------------------------------------------------------


async def waiting_gates(
    client: PrefectClient, *, run: str | None = None, describe: bool = False
) -> list[WaitingGate]:
    """Every gate a live flow run waits at, oldest request first.

    Only live waits: a pause of a flow run whose process died is not listed, once its
    pipeline flow run ended (the crash automation of :mod:`flows.heartbeats` sets it
    Crashed) or a newer pipeline flow run continues the run (``orchestrator resume``).

    Args:
        client: A Prefect API client.
        run: Only this run's gates: its run id, ``<task>/<run>``, or a flow run id.
        describe: Also read what each gate's form shows (``description``).
    """
    paused = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
        ),
        limit=MAX_RUNS,
    )
    found = [(await _gate_of(client, flow_run), flow_run) for flow_run in paused]
    mine = [(g, f) for g, f in found if g is not None and (run is None or g.matches(run))]
    gates = sorted(await _live(client, mine), key=lambda g: g.notice.requested_at)
    if describe:
        gates = [await _described(client, g) for g in gates]
    return gates


async def gates_of_run(
    client: PrefectClient, run: str, *, gate: str | None = None
) -> list[WaitingGate]:
    """The gates ``run`` waits at (those ``gate`` names, if given), with what each shows.

    Raises:
        RunNotFoundError: no flow run of ``run`` is known to the Prefect API.
        ApprovalError: the run waits at no such gate; the message says what was decided.
    """
    gates = [g for g in await waiting_gates(client, run=run, describe=True) if g.is_gate(gate)]
    if not gates:
        raise await _not_waiting(client, run, gate)
    return gates


def select_gate(waiting: Iterable[WaitingGate], run: str, gate: str | None) -> WaitingGate | None:
    """The one waiting gate that ``gate`` names (any, when None); None when none does.

    Raises:
        ApprovalError: several gates match; the message lists them.
    """
    matching = [w for w in waiting if w.is_gate(gate)]
    if len(matching) > 1:
        names = ", ".join(f"{w.notice.approval_id} ({w.notice.summary})" for w in matching)
        raise ApprovalError(
            f"run {run} waits at {len(matching)} gates; choose one with --gate: {names}",
            run_id=run,
            gate=gate,
        )
    return matching[0] if matching else None


async def _live(
    client: PrefectClient, paused: list[tuple[WaitingGate, FlowRun]]
) -> list[WaitingGate]:
    """The gates asked by their run's newest pipeline flow run (or one of its subflows,
    created after it) while that one has not ended."""
    newest: dict[str, FlowRun | None] = {}
    live = []
    for gate, flow_run in paused:
        label = gate.notice.label
        if label not in newest:
            newest[label] = await newest_pipeline(client, label)
        pipeline = newest[label]
        if pipeline is None:  # not asked by a pipeline: nothing to compare with
            live.append(gate)
        elif not _ended(pipeline) and _created(flow_run) >= _created(pipeline):
            live.append(gate)
    return live


async def newest_pipeline(client: PrefectClient, label: str) -> FlowRun | None:
    """The newest pipeline flow run of run ``<task>/<run>``; None if none is known.

    A pipeline flow run is named ``<task>/<run>`` once it opened the run, and
    ``resume <run>`` while a resume starts: a newer one of either name supersedes the
    older flow runs at once.
    """
    run_id = label.rpartition("/")[2]
    named = FlowRunFilter(name=FlowRunFilterName(like_=run_id))
    found = await client.read_flow_runs(flow_run_filter=named, limit=MAX_RUNS)
    pipelines = [f for f in found if f.name in (label, f"resume {run_id}")]
    return max(pipelines, key=_created, default=None)


def _created(flow_run: FlowRun) -> datetime:
    return flow_run.created or datetime.min.replace(tzinfo=UTC)


def _ended(flow_run: FlowRun) -> bool:
    return flow_run.state is not None and flow_run.state.is_final()


async def _gate_of(client: PrefectClient, flow_run: FlowRun) -> WaitingGate | None:
    """The gate a paused flow run waits at; None when it was not paused by one of ours."""
    state = flow_run.state
    key = state.state_details.pause_key if state else None
    if state is None or not key:
        return None
    value = await _input(client, flow_run.id, GateNotice.input_key(key))
    try:
        notice = GateNotice.model_validate(value)
    except ValidationError:
        return None
    return WaitingGate(
        flow_run_id=flow_run.id,
        flow_run_name=flow_run.name,
        notice=notice,
        paused_at=state.timestamp,
        expires_at=state.state_details.pause_timeout,
        ui_url=flow_run_url(flow_run.id),
    )


async def _described(client: PrefectClient, gate: WaitingGate) -> WaitingGate:
    """The gate with the markdown its form shows (Prefect's ``paused-<key>-description``)."""
    key = f"paused-{gate.notice.approval_id}-description"
    value = await _input(client, gate.flow_run_id, key)
    return gate.model_copy(update={"description": value if isinstance(value, str) else ""})


async def _input(client: PrefectClient, flow_run_id: UUID, key: str) -> object:
    """The value of one flow run input; None when it does not exist.

    The API filters by key prefix, and one approval id can be the prefix of another
    (``command-call_1``, ``command-call_10``): the exact key is picked from the matches.
    """
    inputs = await client.filter_flow_run_input(
        flow_run_id, key, limit=MAX_RUNS, exclude_keys=set()
    )
    return next((i.decoded_value for i in inputs if i.key == key), None)


# -- a resumed run's old flow runs ------------------------------------------------------


async def close_stale_flow_runs(client: PrefectClient, label: str, current: UUID) -> list[FlowRun]:
    """End every flow run of run ``label`` that a dead process left open; tag ``current``.

    Called when flow run ``current`` continues the run (``orchestrator resume``), before
    it asks any gate: the older flow runs that are still Running or Paused belong to a
    process that died (or their pause would be listed as a wait forever). Each is set
    Crashed with a message naming ``current``; ``current`` is tagged ``resume`` and
    ``resume of <old flow run id>``, so the UI tells one story.

    Returns:
        The flow runs it closed (those the crash automation already ended are not).
    """
    older = [f for f in await _flow_runs_of(client, label) if f.id != current]
    if not older:
        return []
    stale = [f for f in older if not _ended(f)]
    for flow_run in stale:
        message = f"the process of this flow run died; run {label} continues in flow run {current}"
        await client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
    pipelines = [f for f in older if f.name == label]
    resumed = max(pipelines, key=_created, default=None)
    tags = {"resume", *([f"resume of {resumed.id}"] if resumed else [])}
    own = (await client.read_flow_run(current)).tags
    await client.update_flow_run(current, tags=sorted(tags.union(own)))
    return stale


# -- deciding -------------------------------------------------------------------------


async def decide(
    client: PrefectClient, run: str, decision: ApprovalDecision, *, gate: str | None = None
) -> WaitingGate:
    """Resume the flow run that waits at ``run``'s gate with ``decision``.

    Args:
        client: A Prefect API client.
        run: The run id, ``<task>/<run>``, or the paused flow run's id.
        decision: What a person decided (channel ``ui`` or ``cli``).
        gate: ``plan``, ``handover``, ``command`` or an approval id; needed only when the
            run waits at several gates.

    Returns:
        The gate that was resumed.

    Raises:
        RunNotFoundError: no flow run of ``run`` is known to the Prefect API.
        ApprovalError: the run is not waiting (at that gate), waits at several gates and
            none was chosen, the gate timed out, or the server refused the decision.
    """
    chosen = select_gate(await waiting_gates(client, run=run), run, gate)
    if chosen is None:
        raise await _not_waiting(client, run, gate)
    recorded = recorded_decision(chosen.notice)
    if recorded is not None:
        raise ApprovalError(
            f"the {chosen.notice.approval_id} gate of {chosen.notice.label} was already "
            f"decided: {_decided_text(recorded)} (its manifest says so; the pause of flow run "
            f"{chosen.flow_run_name} ({chosen.flow_run_id}) is stale)",
            run_id=chosen.notice.run_id,
            gate=chosen.notice.approval_id,
        )
    if chosen.expired:
        raise ApprovalError(
            f"the {chosen.notice.approval_id} gate of {chosen.notice.label} timed out at "
            f"{chosen.expires_at:%Y-%m-%d %H:%M:%S} UTC: it expired (nobody decided in time)",
            run_id=chosen.notice.run_id,
            gate=chosen.notice.approval_id,
        )
    run_input = form_input(decision)
    key = ResumeNotice.input_key(chosen.notice.approval_id)
    await _announce(client, chosen.flow_run_id, key, resume_notice(decision))
    result = await client.resume_flow_run(chosen.flow_run_id, run_input=run_input)
    if result.status is not SetStateStatus.ACCEPT:
        await client.delete_flow_run_input(chosen.flow_run_id, key)
        reason = getattr(result.details, "reason", None) or result.status.value
        raise ApprovalError(
            f"the Prefect API refused to resume {chosen.notice.label} at "
            f"{chosen.notice.approval_id}: {reason}",
            run_id=chosen.notice.run_id,
            gate=chosen.notice.approval_id,
        )
    return chosen


def recorded_decision(notice: GateNotice) -> DecisionNotice | None:
    """The gate's decision as the run's manifest records it, where this machine holds the
    run (under ``ORCHESTRATOR_HOME``); None when undecided there, or not held here.

    The manifest is the record: a pause that Prefect still shows may belong to a flow
    run whose process died after the decision was recorded.
    """
    try:
        store = Workspace.open(Settings()).store
        path = store.ref(notice.task_id, notice.run_id).manifest_path
        approval = load_manifest(path).approval(notice.approval_id) if path.is_file() else None
    except (OrchestratorError, OSError, ValueError):  # not ours to read: the API decides
        return None
    if approval is None or approval.decision is None or approval.channel is None:
        return None
    return DecisionNotice(
        decision=approval.decision,
        approver=approval.approver or "unknown",
        reason=approval.reason or "",
        channel=approval.channel,
        decided_at=approval.decided_at or approval.requested_at,
    )


async def _announce(
    client: PrefectClient, flow_run_id: UUID, key: str, notice: ResumeNotice
) -> None:
    """Tell the paused gate which tool resumes it (replacing what a refused try left)."""
    value = notice.model_dump_json()
    try:
        await client.create_flow_run_input(flow_run_id, key, value)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code != 409:
            raise
        await client.delete_flow_run_input(flow_run_id, key)
        await client.create_flow_run_input(flow_run_id, key, value)


async def decided_gates(client: PrefectClient, run: str) -> list[DecidedGate]:
    """Every gate of ``run`` that was decided, in the order they were decided."""
    decided: dict[str, DecidedGate] = {}
    for flow_run in await _flow_runs_of(client, run):
        inputs = await client.filter_flow_run_input(
            flow_run.id, "orchestrator-", limit=MAX_RUNS, exclude_keys=set()
        )
        values = {i.key: i.decoded_value for i in inputs}
        for key, value in values.items():
            if not key.startswith(DecisionNotice.INPUT_PREFIX):
                continue
            approval_id = key.removeprefix(DecisionNotice.INPUT_PREFIX)
            try:
                decided[approval_id] = DecidedGate(
                    flow_run_id=flow_run.id,
                    notice=GateNotice.model_validate(values.get(GateNotice.input_key(approval_id))),
                    decision=DecisionNotice.model_validate(value),
                )
            except ValidationError:
                continue  # not one of ours after all
    return sorted(decided.values(), key=lambda d: d.decision.decided_at)


async def _not_waiting(client: PrefectClient, run: str, gate: str | None) -> OrchestratorError:
    """Why ``run`` cannot be decided (at ``gate``): unknown, already decided, or not waiting."""
    if not await _flow_runs_of(client, run):
        return RunNotFoundError(
            f"unknown run {run!r}: no flow run of it in the Prefect API at {_api_url()}",
            run_id=run,
        )
    decided = await decided_gates(client, run)
    for past in decided:
        if gate in (past.notice.approval_id, past.notice.gate.value):
            return ApprovalError(
                f"the {past.notice.approval_id} gate of {past.notice.label} was already "
                f"decided: {_decided_text(past.decision)}",
                run_id=past.notice.run_id,
                gate=past.notice.approval_id,
            )
    where = f" at gate {gate!r}" if gate else ""
    waiting = await waiting_gates(client, run=run)
    if waiting:
        detail = "; it waits at " + ", ".join(w.notice.approval_id for w in waiting)
    elif decided:
        detail = "; decided so far: " + ", ".join(
            f"{d.notice.approval_id} ({_decided_text(d.decision)})" for d in decided
        )
    else:
        detail = ""
    return ApprovalError(f"run {run} is not waiting for a decision{where}{detail}", run_id=run)


async def _flow_runs_of(client: PrefectClient, run: str) -> list[FlowRun]:
    """The flow runs of ``run`` (named ``<task>/<run>`` and ``<phase> <task>/<run>``)."""
    try:
        by_id = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run)]))
    except ValueError:
        pass
    else:
        return await client.read_flow_runs(flow_run_filter=by_id, limit=1)
    like = FlowRunFilter(name=FlowRunFilterName(like_=run))
    named = await client.read_flow_runs(flow_run_filter=like, limit=MAX_RUNS)
    suffix = run if "/" in run else f"/{run}"
    return [f for f in named if f.name == run or f.name.endswith(suffix)]


def _decided_text(decision: DecisionNotice) -> str:
    reason = f": {decision.reason}" if decision.reason else ""
    return (
        f"{decision.decision.value} by {decision.approver} ({decision.channel.value}) at "
        f"{decision.decided_at:%Y-%m-%d %H:%M:%S} UTC{reason}"
    )


def _api_url() -> str:
    return PREFECT_API_URL.value() or "(ephemeral: PREFECT_API_URL is not set)"
