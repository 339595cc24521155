"""People are told when a run waits for them, and warned before a gate's deadline.

Real parts: the test's Prefect server (its triggers and actions services run the
automations), a pipeline run in a subprocess that pauses at its plan gate, and a webhook
receiver on loopback (a real HTTP server in this test) behind a Custom Webhook block, set
up the way ``make serve`` does it (:func:`devstack._prefect.create_automations`). The
link the notification carries is opened in chromium, in the UI people land on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from devstack._prefect import create_automations, save_notify_block
from flows.approvals import run_with_client
from flows.notifications import DEADLINE_AUTOMATION, WAITING_AUTOMATION
from schemas import Channel, Decision, RunStatus
from tests.helpers.browser import browser_page, chromium, open_run_menu
from tests.helpers.webhook import Webhook, webhook_receiver

from .conftest import GateStack, PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

WARNING_SECONDS = 150
"""The warning's lead in this test: 30 s into the plan gate's 180 s (plan-notify.yaml)."""
NOTIFIED_WITHIN = 90.0
WARNED_WITHIN = 150.0


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with webhook_receiver() as hook:
        yield hook


@pytest.fixture
def notifying(gate_stack: GateStack, webhook: Webhook) -> Iterator[Webhook]:
    """The notification automations on the test server, through the webhook's block (as
    ``make serve`` makes them); deleted afterwards, so no later test notifies."""
    api_url = gate_stack.server.api_url
    block = save_notify_block(webhook.url, api_url=api_url)
    create_automations(api_url, notify_block=block)
    try:
        yield webhook
    finally:
        _delete_notify_automations(gate_stack)


def test_a_waiting_run_notifies_once_and_warns_once_before_its_deadline(
    gate_stack: GateStack, notifying: Webhook
) -> None:
    run = gate_stack.start(
        "plan-notify.yaml",
        "notify",
        env={"ORCHESTRATOR_GATE_WARNING_SECONDS": str(WARNING_SECONDS)},
    )
    gate = gate_stack.wait_for_gate(run, "plan")
    assert gate.expires_at is not None
    label = gate.notice.label

    waiting = notifying.wait_for(run.run_id, "waits for a decision", NOTIFIED_WITHIN)
    assert waiting["path"] == "/notify"
    assert waiting["subject"] == f"{label} waits for a decision at its plan gate"
    body = waiting["body"]
    assert f"Run {label} (env dev) waits for a person at its plan gate (plan)." in body
    assert "What is asked:\n```\nplan: 1 subtask: longest-word\n```\n" in body
    deadline = f"{gate.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    assert f"Deadline: {deadline};" in body
    assert waiting["text"] == f"{waiting['subject']}\n\n{body}"
    run_link = _link(body, "Open the paused run")
    v2_page = f"{gate_stack.server.ui_url}/v2/runs/flow-run/{gate.flow_run_id}"
    assert run_link == gate.ui_url == v2_page
    listed = gate_stack.cli("approvals")
    paused = re.search(r"paused runs in the Prefect UI: (\S+)", listed.stdout)
    assert paused, listed.stdout
    assert _link(body, "Every paused run") == paused.group(1)
    assert f"orchestrator approve {run.run_id}" in body

    _the_link_opens_the_paused_run(run_link, run)

    warning = notifying.wait_for(run.run_id, "^Deadline near", WARNED_WITHIN)
    assert warning["subject"] == (f"Deadline near: {label} waits at its plan gate until {deadline}")
    left = re.search(r"still waits at its plan gate \(plan\): (\d+) s are left", warning["body"])
    assert left and abs(int(left.group(1)) - WARNING_SECONDS) <= 5, warning["body"]
    assert _link(warning["body"], "Open the paused run") == run_link

    rejected = gate_stack.cli("reject", run.run_id, "--reason", "told in time", "--approver", "Ada")
    assert rejected.returncode == 0, rejected.stderr
    assert run.wait() == 1, run.output()
    plan = gate_stack.manifest(run.run_id).approval("plan")
    assert plan is not None
    assert (plan.decision, plan.channel) == (Decision.REJECT, Channel.CLI)
    assert gate_stack.manifest(run.run_id).status is RunStatus.REJECTED
    subjects = [r["subject"] for r in notifying.of_run(run.run_id)]
    assert len(subjects) == 2, subjects  # exactly one notification and one warning
    assert subjects.count(waiting["subject"]) == subjects.count(warning["subject"]) == 1


def _link(body: str, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}: (\S+)$", body, re.MULTILINE)
    assert found, body
    return found.group(1)


def _the_link_opens_the_paused_run(link: str, run: PipelineRun) -> None:
    """The notification's link, in chromium: the V2 UI's page of the paused run, whose ⋮
    menu offers Resume."""
    with chromium() as browser, browser_page(browser, 1280, 900) as page:
        page.goto(link)
        page.wait_for_url(re.compile(r"/v2/runs/flow-run/"))
        expect(page.get_by_text(re.compile(re.escape(run.run_id))).first).to_be_visible()
        expect(page.get_by_text("Paused", exact=True).first).to_be_visible()
        open_run_menu(page)


def test_setup_automations_creates_the_notification_automations_once(
    gate_stack: GateStack, webhook: Webhook
) -> None:
    block = save_notify_block(webhook.url, api_url=gate_stack.server.api_url)
    assert block == "custom-webhook/orchestrator-dev"
    try:
        for wrong, why in [
            ("custom-webhook/nobody", "no block 'custom-webhook/nobody' on the Prefect server"),
            ("orchestrator-vault-credentials/default", "is not a notification block"),
            ("approvers", "name the notification block as <block type>/<name>"),
        ]:
            refused = gate_stack.cli_here("setup", "automations", "--notify-block", wrong)
            assert refused.returncode == 2, refused
            assert why in refused.stderr
        assert _notify_automations(gate_stack) == []  # a wrong block changes nothing

        first = gate_stack.cli_here("setup", "automations", "--notify-block", block)
        assert first.returncode == 0, first.stderr
        for name in (WAITING_AUTOMATION, DEADLINE_AUTOMATION):
            assert f"automation '{name}' created" in first.stdout
            assert f"notifies through {block}" in first.stdout
        again = gate_stack.cli_here("setup", "automations", "--notify-block", block)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("unchanged") == 3, again.stdout  # crash, waiting, deadline
        assert len(_notify_automations(gate_stack)) == 2

        without = gate_stack.cli_here("setup", "automations")
        assert "no notifications: give --notify-block" in without.stdout
    finally:
        _delete_notify_automations(gate_stack)


def _notify_automations(stack: GateStack) -> list[Any]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read(client: Any) -> list[Any]:
        found = []
        for name in (WAITING_AUTOMATION, DEADLINE_AUTOMATION):
            found += await client.read_automations_by_name(name)
        return found

    with temporary_settings(updates={PREFECT_API_URL: stack.server.api_url}):
        return run_with_client(read)


def _delete_notify_automations(stack: GateStack) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def delete(client: Any, automation_id: Any) -> None:
        await client.delete_automation(automation_id)

    for automation in _notify_automations(stack):
        with temporary_settings(updates={PREFECT_API_URL: stack.server.api_url}):
            run_with_client(delete, automation.id)
