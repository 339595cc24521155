"""Zombie detection: a flow run whose process died ends Crashed, not Running forever.

A flow run killed with SIGKILL (or on a machine that died) never reports an end, so
Prefect shows it Running (or Paused, at a gate) for good. Prefect's answer
(docs.prefect.io/v3/advanced/detect-zombie-flows) has two halves, both needed:

- every flow run of ours sends a heartbeat event (``prefect.flow-run.heartbeat``)
  every :data:`HEARTBEAT_SECONDS`: :func:`heartbeat_environ` for a worker's
  environment (its flow runs inherit it), :func:`heartbeat_settings` in a process that
  runs flows itself (``orchestrator run``/``resume``);
- an automation on the server (:func:`ensure_crash_automation`, by name, idempotent)
  that sets a flow run Crashed when no heartbeat and no end came within
  ``crash_after_seconds`` of its last heartbeat.

The automation matches only the flows of this project (:data:`FLOW_NAMES`): another
project's flows on the same server may send heartbeats less often, and must not be
crashed by our window. A phase subflow runs in its pipeline's process without a
heartbeat of its own (:func:`flows._runtime.quiet_subflow`); when the process dies, the
pipeline's flow run is crashed, and a later ``orchestrator resume`` closes the subflows
it left open (:func:`flows.approvals.close_stale_flow_runs`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.settings.context import get_current_settings

from orchestrator.exceptions import InvalidInputError

from ._automations import Outcome, ensure_automation

HEARTBEAT_SECONDS = 30
"""How often a flow run of ours says it is alive; Prefect's minimum."""
CRASH_AFTER_SECONDS = 90
"""A flow run silent this long after a heartbeat is crashed (three heartbeats missed)."""
MIN_CRASH_AFTER_SECONDS = HEARTBEAT_SECONDS + 10
"""Shorter windows would crash live runs whose heartbeat is a little late."""
AUTOMATION_NAME = "orchestrator: crash flow runs whose process died"
CRASH_MESSAGE = (
    "the process running this flow run stopped sending heartbeats (killed, or its machine "
    "died); continue the run with 'orchestrator resume RUN'"
)
FLOW_NAMES = (
    "pipeline",
    "plan",
    "build",
    "build-subtask",
    "test",
    "review",
    "nightly",
    "sync-backlog",
)
"""Every flow of this project (a test checks the list against the ``@flow`` names)."""
ENDED_EVENTS = frozenset(
    f"prefect.flow-run.{name}"
    # by state name: our rejected runs end Cancelled, named Rejected or Expired
    for name in ("Completed", "Failed", "Cancelled", "Crashed", "Rejected", "Expired")
)


def crash_automation(crash_after_seconds: int = CRASH_AFTER_SECONDS) -> AutomationCore:
    """The automation that crashes our flow runs that stopped sending heartbeats.

    Raises:
        InvalidInputError: the window is not longer than a heartbeat plus a margin.
    """
    if crash_after_seconds < MIN_CRASH_AFTER_SECONDS:
        raise InvalidInputError(
            f"crash-after must be at least {MIN_CRASH_AFTER_SECONDS} s (heartbeats come every "
            f"{HEARTBEAT_SECONDS} s), not {crash_after_seconds}"
        )
    trigger = EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", *ENDED_EVENTS},
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        match_related=ResourceSpecification(
            {"prefect.resource.role": "flow", "prefect.resource.name": list(FLOW_NAMES)}
        ),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=crash_after_seconds),
    )
    return AutomationCore(
        name=AUTOMATION_NAME,
        description=(
            f"Sets a flow run of Codex Orchestrator Crashed when {crash_after_seconds} s pass "
            f"after a heartbeat with no other heartbeat and no end (flows send one every "
            f"{HEARTBEAT_SECONDS} s). Created by 'orchestrator setup automations'."
        ),
        enabled=True,
        trigger=trigger,
        actions=[
            ChangeFlowRunState(state=StateType.CRASHED, name="Crashed", message=CRASH_MESSAGE)
        ],
    )


async def ensure_crash_automation(
    client: PrefectClient, *, crash_after_seconds: int = CRASH_AFTER_SECONDS
) -> tuple[UUID, Outcome]:
    """Create the crash automation, or bring the one of that name up to date.

    Returns:
        Its id, and whether it was created, updated or already as wanted. Further
        automations of that name (made by hand) are left alone.
    """
    return await ensure_automation(client, crash_automation(crash_after_seconds))


def heartbeat_environ() -> dict[str, str]:
    """Environment variables that make a process's flow runs send heartbeats."""
    return {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}


def heartbeat_settings() -> AbstractContextManager[object]:
    """Settings for running flows in this process with our heartbeat.

    A frequency already set below the crash window is kept; unset, or longer (Prefect's
    default is 180 s), it becomes :data:`HEARTBEAT_SECONDS`, so the automation never
    crashes a live run of ours.
    """
    current = get_current_settings().flows.heartbeat_frequency
    keep = current is not None and current <= HEARTBEAT_SECONDS
    frequency = current if keep else HEARTBEAT_SECONDS
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: frequency})
