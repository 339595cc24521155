"""Automations declared as code, created on a Prefect server by name (idempotent)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.events.schemas.automations import AutomationCore

Outcome = Literal["created", "updated", "unchanged"]


async def ensure_automation(client: PrefectClient, wanted: AutomationCore) -> tuple[UUID, Outcome]:
    """Create ``wanted``, or bring the automation of its name up to date.

    Returns:
        Its id, and whether it was created, updated or already as wanted. Further
        automations of that name (made by hand) are left alone.
    """
    existing = await client.read_automations_by_name(wanted.name)
    if not existing:
        return await client.create_automation(wanted), "created"
    current = existing[0]
    if _as_core(current) == _as_core(wanted):
        return current.id, "unchanged"
    await client.update_automation(current.id, wanted)
    return current.id, "updated"


def _as_core(automation: AutomationCore) -> AutomationCore:
    """What an automation does, comparable between one read back and one built here (as
    models: their sets of event names are equal in any order)."""
    return AutomationCore.model_validate(automation.model_dump())
