"""Notifications without servers: the events' payload, the automations' templates as the
server renders them, and when the watcher emits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.server.utilities.user_templates import render_user_template_sync

import flows.notifications
from flows.notifications import (
    GATE_DEADLINE,
    GATE_WAITING,
    gate_payload,
    notify_automation,
    watch_gate,
    while_notifying,
)
from schemas import Gate, GateNotice, utc_now

# What an agent might write: markdown, HTML, a template of its own, a fence of its own.
AGENT_TEXT = "command OUTSIDE the sandbox: echo **x** <img src=x> {{ 7*7 }} ``` done"
BLOCK_ID = UUID(int=7)


def notice(summary: str = AGENT_TEXT, timeout_seconds: int = 600) -> GateNotice:
    return GateNotice(
        task_id="add-word-stats",
        run_id="r-1",
        gate=Gate.COMMAND,
        approval_id="command-c1",
        summary=summary,
        requested_at=utc_now(),
        timeout_seconds=timeout_seconds,
        env="prod",
    )


def rendered(event: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Subject and body as the server's actions service renders the automation's templates."""
    [action] = notify_automation(event, BLOCK_ID).actions
    assert isinstance(action, SendNotification)
    context = {"event": {"event": event, "payload": payload}}
    subject = render_user_template_sync(action.subject, context)
    return subject, render_user_template_sync(action.body, context)


def test_what_an_agent_wrote_travels_fenced_and_as_written() -> None:
    deadline = datetime(2026, 12, 1, 17, 0, tzinfo=utc_now().tzinfo)
    payload = gate_payload(notice(), uuid4(), deadline, now=deadline - timedelta(seconds=90))
    assert payload["summary"] == AGENT_TEXT
    assert payload["asked"] == f"````\n{AGENT_TEXT}\n````"  # longer than the text's own fence
    assert payload["deadline"] == "2026-12-01 17:00:00 UTC"
    assert payload["seconds_left"] == 90
    subject, body = rendered(GATE_WAITING, payload)
    assert subject == "add-word-stats/r-1 waits for a decision at its command-c1 gate"
    assert f"What is asked:\n````\n{AGENT_TEXT}\n````\n" in body  # not 49, not HTML
    assert "Run add-word-stats/r-1 (env prod) waits for a person at its command gate" in body
    assert "Deadline: 2026-12-01 17:00:00 UTC; with no decision by then the gate expires" in body
    assert "orchestrator reject r-1 --reason" in body


def test_the_warning_says_how_long_is_left() -> None:
    deadline = utc_now() + timedelta(minutes=10)
    payload = gate_payload(notice(), uuid4(), deadline, now=deadline - timedelta(seconds=600))
    subject, body = rendered(GATE_DEADLINE, payload)
    assert subject == (
        f"Deadline near: add-word-stats/r-1 waits at its command-c1 gate until "
        f"{payload['deadline']}"
    )
    assert "still waits at its command gate (command-c1): 600 s are left." in body


def test_links_come_from_the_ui_people_land_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    flow_run_id = uuid4()
    updates = {
        PREFECT_API_URL: "http://127.0.0.1:4999/api",
        PREFECT_UI_URL: "http://127.0.0.1:4999",
    }
    with temporary_settings(updates=updates):
        payload = gate_payload(notice(), flow_run_id, utc_now())
    assert payload["run_url"] == f"http://127.0.0.1:4999/v2/runs/flow-run/{flow_run_id}"
    assert payload["paused_runs_url"].startswith("http://127.0.0.1:4999/v2/runs?state-types=")
    with temporary_settings(updates={PREFECT_UI_URL: ""}):
        payload = gate_payload(notice(), flow_run_id, utc_now())
    assert payload["run_url"].startswith("(no Prefect UI known")


@pytest.mark.parametrize("event", [GATE_WAITING, GATE_DEADLINE])
def test_each_automation_sends_one_notification_per_event(event: str) -> None:
    automation = notify_automation(event, BLOCK_ID)
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.expect == {event}
    assert trigger.posture is Posture.Reactive and trigger.threshold == 1
    assert trigger.match.model_dump() == {"prefect.resource.id": "orchestrator.gate.*"}
    [action] = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == BLOCK_ID


class Recorder:
    """Stands in for the gate's flow run: the events, and a pause that shows at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, deadline_in: float) -> None:
        self.events: list[str] = []
        self.deadline = utc_now() + timedelta(seconds=deadline_in)

        async def paused_until(notice: GateNotice, flow_run_id: UUID) -> datetime:
            return self.deadline

        def emit(event: str, notice: GateNotice, flow_run_id: UUID, deadline: datetime) -> None:
            assert deadline == self.deadline
            self.events.append(event)

        monkeypatch.setattr(flows.notifications, "_paused_until", paused_until)
        monkeypatch.setattr(flows.notifications, "emit_gate_event", emit)


@pytest.mark.anyio
async def test_the_watcher_warns_the_lead_before_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder(monkeypatch, deadline_in=2.5)
    with anyio.fail_after(30):
        await watch_gate(notice(timeout_seconds=10), uuid4(), warn_before=2)
    assert recorder.events == [GATE_WAITING, GATE_DEADLINE]
    assert utc_now() >= recorder.deadline - timedelta(seconds=2)  # not before the lead


@pytest.mark.anyio
@pytest.mark.parametrize(("timeout_seconds", "warn_before"), [(10, 0), (10, 10), (5, 600)])
async def test_no_warning_when_off_or_when_the_wait_is_shorter_than_the_lead(
    monkeypatch: pytest.MonkeyPatch, timeout_seconds: int, warn_before: int
) -> None:
    recorder = Recorder(monkeypatch, deadline_in=timeout_seconds)
    with anyio.fail_after(30):
        await watch_gate(notice(timeout_seconds=timeout_seconds), uuid4(), warn_before=warn_before)
    assert recorder.events == [GATE_WAITING]


@pytest.mark.anyio
async def test_a_notification_that_cannot_go_out_never_fails_the_gate(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    Recorder(monkeypatch, deadline_in=60)

    def broken(*args: object) -> None:
        raise ConnectionError("events API down")

    monkeypatch.setattr(flows.notifications, "emit_gate_event", broken)
    await watch_gate(notice(), uuid4(), warn_before=10)
    assert "no notification for command-c1 of add-word-stats/r-1: events API down" in caplog.text


@pytest.mark.anyio
async def test_the_pause_ends_the_watch_and_its_outcome_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watching = anyio.Event()
    stopped: list[bool] = []

    async def watch(notice: GateNotice, flow_run_id: UUID, *, warn_before: int) -> None:
        watching.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.append(True)

    monkeypatch.setattr(flows.notifications, "watch_gate", watch)
    monkeypatch.setattr(flows.notifications.flow_run, "get_id", lambda: str(uuid4()))

    async def decided() -> str:
        await watching.wait()
        return "approve"

    async def timed_out() -> str:
        await watching.wait()
        raise TimeoutError("the pause timed out")

    with anyio.fail_after(30):
        assert await while_notifying(notice(), decided, warn_before=10) == "approve"
        with pytest.raises(TimeoutError, match="the pause timed out"):  # as it is, not grouped
            await while_notifying(notice(), timed_out, warn_before=10)
    assert stopped == [True, True]
