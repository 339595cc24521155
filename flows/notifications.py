"""Telling people that a run waits for them: gate events, and the automations that notify.

A gate that waits for a person (:func:`flows.gates.approval_gate`) emits two Prefect
events of ours while it waits (:func:`watch_gate`), the gate as their resource, the run
and the paused flow run related:

- :data:`GATE_WAITING` (``orchestrator.gate.waiting``) once its flow run is Paused;
- :data:`GATE_DEADLINE` (``orchestrator.gate.deadline``) ``warn_before`` seconds before
  the pause's deadline (``ORCHESTRATOR_GATE_WARNING_SECONDS``, default 600), unless the
  gate was decided by then or its whole wait is no longer than that (the first
  notification already names the deadline).

Two automations on the server (:func:`ensure_notify_automations`: by name, idempotent;
``orchestrator setup automations --notify-block custom-webhook/approvers``) turn each
event into one notification through a Prefect notification block (Custom Webhook,
Slack, email, Microsoft Teams ...: whatever block the server has). Each carries the
run, the gate, what is asked, the deadline, a link to the paused run in the UI people
land on and the link to every paused run. What is asked may hold text an agent wrote:
it travels as a fenced code block (``asked``), read as written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast
from uuid import UUID

import anyio
from prefect.client.orchestration import PrefectClient, get_client
from prefect.events import emit_event
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound
from prefect.logging.loggers import get_logger
from prefect.runtime import flow_run

from orchestrator.exceptions import InvalidInputError
from orchestrator.literal import md_fence
from schemas import GateNotice, utc_now

from ._automations import Outcome, ensure_automation
from ._resources import gate_resource_id, run_resource_id
from .ui_links import flow_run_url, paused_runs_url

GATE_WAITING = "orchestrator.gate.waiting"
GATE_DEADLINE = "orchestrator.gate.deadline"
WAITING_AUTOMATION = "orchestrator: notify when a run waits for a person"
DEADLINE_AUTOMATION = "orchestrator: warn before a gate's deadline"
PAUSE_SEEN_WITHIN = 60.0
"""Seconds to wait for the gate's flow run to show Paused before notifying anyway."""
PAUSE_POLL_SECONDS = 0.25

# Jinja templates the server renders with the triggering event (Prefect's automations).
_SUBJECTS = {
    GATE_WAITING: (
        "{{ event.payload.label }} waits for a decision at its {{ event.payload.approval_id }} gate"
    ),
    GATE_DEADLINE: (
        "Deadline near: {{ event.payload.label }} waits at its "
        "{{ event.payload.approval_id }} gate until {{ event.payload.deadline }}"
    ),
}
_OPENINGS = {
    GATE_WAITING: (
        "Run {{ event.payload.label }} (env {{ event.payload.env }}) waits for a person at "
        "its {{ event.payload.gate }} gate ({{ event.payload.approval_id }})."
    ),
    GATE_DEADLINE: (
        "Run {{ event.payload.label }} (env {{ event.payload.env }}) still waits at its "
        "{{ event.payload.gate }} gate ({{ event.payload.approval_id }}): "
        "{{ event.payload.seconds_left }} s are left."
    ),
}
_DETAILS = (
    "\n\nWhat is asked:\n{{ event.payload.asked }}\n"
    "Deadline: {{ event.payload.deadline }}; with no decision by then the gate expires and "
    "the run ends expired.\n"
    "Open the paused run: {{ event.payload.run_url }}\n"
    "Every paused run: {{ event.payload.paused_runs_url }}\n"
    "From a terminal: orchestrator approve {{ event.payload.run_id }}, or orchestrator "
    'reject {{ event.payload.run_id }} --reason "..."\n'
)
_NO_UI = "(no Prefect UI known to the run: see 'orchestrator approvals')"

_logger = get_logger(__name__)
T = TypeVar("T")


# -- the events ------------------------------------------------------------------------


def gate_payload(
    notice: GateNotice, flow_run_id: UUID, deadline: datetime, *, now: datetime | None = None
) -> dict[str, Any]:
    """What a gate event carries: every field a notification's template may use.

    ``summary`` is as written (it may hold an agent's words); ``asked`` is the same text
    as a fenced code block, which chat tools and mail show literally.
    """
    left = deadline - (now or utc_now())
    return {
        "task_id": notice.task_id,
        "run_id": notice.run_id,
        "label": notice.label,
        "env": notice.env or "unknown",
        "gate": notice.gate.value,
        "approval_id": notice.approval_id,
        "summary": notice.summary,
        "asked": md_fence(notice.summary or notice.gate.value).rstrip("\n"),
        "requested_at": notice.requested_at.isoformat(),
        "timeout_seconds": notice.timeout_seconds,
        "deadline": f"{deadline:%Y-%m-%d %H:%M:%S} UTC",
        "deadline_iso": deadline.isoformat(),
        "seconds_left": max(0, round(left.total_seconds())),
        "flow_run_id": str(flow_run_id),
        "run_url": flow_run_url(flow_run_id) or _NO_UI,
        "paused_runs_url": paused_runs_url() or _NO_UI,
    }


def emit_gate_event(event: str, notice: GateNotice, flow_run_id: UUID, deadline: datetime) -> None:
    """Emit one of the gate's events (:data:`GATE_WAITING`, :data:`GATE_DEADLINE`)."""
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": gate_resource_id(
                notice.task_id, notice.run_id, notice.approval_id
            ),
            "prefect.resource.name": f"{notice.label} {notice.approval_id}",
            "orchestrator.gate": notice.gate.value,
        },
        related=[
            {
                "prefect.resource.id": run_resource_id(notice.task_id, notice.run_id),
                "prefect.resource.role": "orchestrator-run",
                "prefect.resource.name": notice.label,
            },
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
            },
        ],
        payload=gate_payload(notice, flow_run_id, deadline),
    )


async def watch_gate(notice: GateNotice, flow_run_id: UUID, *, warn_before: int) -> None:
    """While a gate waits: :data:`GATE_WAITING` once its flow run shows Paused, then
    :data:`GATE_DEADLINE` ``warn_before`` seconds before the pause's deadline (none when
    ``warn_before`` is 0 or not shorter than the whole wait).

    Cancel it when the gate is decided. It never raises: a notification that cannot go
    out is logged, and the gate waits as before.
    """
    try:
        deadline = await _paused_until(notice, flow_run_id)
        emit_gate_event(GATE_WAITING, notice, flow_run_id, deadline)
        if not 0 < warn_before < notice.timeout_seconds:
            return
        warn_at = deadline - timedelta(seconds=warn_before)
        await anyio.sleep(max(0.0, (warn_at - utc_now()).total_seconds()))
        emit_gate_event(GATE_DEADLINE, notice, flow_run_id, deadline)
    except Exception as exc:  # never the gate's failure
        _logger.warning("no notification for %s of %s: %s", notice.approval_id, notice.label, exc)


async def while_notifying(
    notice: GateNotice, wait: Callable[[], Awaitable[T]], *, warn_before: int
) -> T:
    """``await wait()`` (the gate's pause) while :func:`watch_gate` tells people; what it
    raises is raised as it is."""
    run_id = flow_run.get_id()
    if not run_id:  # not in a flow run: nothing is paused, no one to tell
        return await wait()
    outcome: T | None = None
    failure: Exception | None = None
    async with anyio.create_task_group() as watching:
        watching.start_soon(partial(watch_gate, notice, UUID(run_id), warn_before=warn_before))
        try:
            outcome = await wait()
        except Exception as exc:  # not wrapped in the task group's exception group
            failure = exc
        watching.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return cast(T, outcome)


async def _paused_until(notice: GateNotice, flow_run_id: UUID) -> datetime:
    """The deadline of the gate's pause, once the flow run shows it Paused (a link in the
    notification must open a paused run); estimated if it does not show within
    :data:`PAUSE_SEEN_WITHIN`."""
    estimate = utc_now() + timedelta(seconds=notice.timeout_seconds)
    async with get_client() as client:
        with anyio.move_on_after(PAUSE_SEEN_WITHIN):
            while True:
                state = (await client.read_flow_run(flow_run_id)).state
                details = state.state_details if state is not None else None
                if state is not None and state.is_paused() and details is not None:
                    if details.pause_key == notice.approval_id:
                        return details.pause_timeout or estimate
                await anyio.sleep(PAUSE_POLL_SECONDS)
    return estimate


# -- the automations -------------------------------------------------------------------


def notify_automation(event: str, block_document_id: UUID) -> AutomationCore:
    """The automation that sends one notification per ``event`` through the block."""
    name = WAITING_AUTOMATION if event == GATE_WAITING else DEADLINE_AUTOMATION
    return AutomationCore(
        name=name,
        description=(
            f"Sends a notification for every '{event}' event of Codex Orchestrator. "
            "Created by 'orchestrator setup automations --notify-block ...'."
        ),
        enabled=True,
        trigger=EventTrigger(
            expect={event},
            match=ResourceSpecification({"prefect.resource.id": "orchestrator.gate.*"}),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject=_SUBJECTS[event],
                body=_OPENINGS[event] + _DETAILS,
            )
        ],
    )


async def notify_block_id(client: PrefectClient, block: str) -> UUID:
    """The id of notification block ``<block type slug>/<block name>`` on the server.

    Raises:
        InvalidInputError: not of that form, no such block, or not a notification block.
    """
    slug, _, name = block.partition("/")
    if not slug or not name:
        raise InvalidInputError(
            f"name the notification block as <block type>/<name>, e.g. "
            f"custom-webhook/approvers, not {block!r}"
        )
    try:
        document = await client.read_block_document_by_name(name, block_type_slug=slug)
    except ObjectNotFound:
        raise InvalidInputError(
            f"no block {block!r} on the Prefect server: create it first (UI: Blocks, or "
            "Block.save in Python)"
        ) from None
    capabilities = document.block_schema.capabilities if document.block_schema else []
    if "notify" not in capabilities:
        raise InvalidInputError(f"block {block!r} is not a notification block (it cannot notify)")
    assert document.id is not None
    return document.id


async def ensure_notify_automations(
    client: PrefectClient, *, block: str
) -> list[tuple[str, UUID, Outcome]]:
    """Create (or bring up to date) both notification automations, sending through
    ``block`` (``<block type slug>/<block name>``).

    Returns:
        Each automation's name, id and outcome.

    Raises:
        InvalidInputError: the block is not a notification block on the server.
    """
    block_id = await notify_block_id(client, block)
    done = []
    for event in (GATE_WAITING, GATE_DEADLINE):
        wanted = notify_automation(event, block_id)
        automation_id, outcome = await ensure_automation(client, wanted)
        done.append((wanted.name, automation_id, outcome))
    return done
