"""An approver decides in the Prefect UI alone: Debian's chromium, headless, via Playwright.

The screenshot of the filled-in form goes to the test's folder; with
``ORCHESTRATOR_UPDATE_SCREENSHOTS=1`` it also replaces ``docs/images/approval-form.png``
(shown in the README).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from schemas import Channel, Decision, RunStatus
from tests.helpers.browser import browser_page, chromium, form_field

from .conftest import GateStack

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "approval-form.png"
UI_TIMEOUT_MS = 90_000


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium() as browser, browser_page(browser, 1280, 1000) as page:
        yield page


def test_an_approver_approves_the_plan_in_the_prefect_ui(
    gate_stack: GateStack, page: Page, tmp_path: Path
) -> None:
    run = gate_stack.start("plan-required.yaml", "approve-ui")
    waiting = gate_stack.wait_for_gate(run, "plan")

    page.goto(f"{gate_stack.server.ui_url}/runs/flow-run/{waiting.flow_run_id}")
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible(timeout=UI_TIMEOUT_MS)
    resume.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Approve the plan of")).to_be_visible()
    expect(dialog.get_by_role("cell", name="slugify", exact=True)).to_be_visible()
    # The select opens from its icon (a click on its face only focuses it).
    form_field(dialog, page, "Decision").locator(".p-select-button__icon").click()
    page.get_by_role("option", name="approve").click()
    form_field(dialog, page, "Approver").locator("textarea").fill("Ada Lovelace")
    form_field(dialog, page, "Reason").locator("textarea").fill("two small helpers, as asked")
    shot = tmp_path / "approval-form.png"
    page.screenshot(path=shot)
    if os.environ.get("ORCHESTRATOR_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, SCREENSHOT)
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden()

    assert run.wait() == 0, run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    plan = manifest.approval("plan")
    assert plan is not None
    assert (plan.decision, plan.approver, plan.channel) == (
        Decision.APPROVE,
        "Ada Lovelace",
        Channel.UI,
    )
    assert plan.reason == "two small helpers, as asked"


def test_a_rejection_without_a_reason_is_refused_in_the_ui_in_plain_words(
    gate_stack: GateStack, page: Page
) -> None:
    run = gate_stack.start("plan-rejected.yaml", "reject-ui")
    waiting = gate_stack.wait_for_gate(run, "plan")

    page.goto(f"{gate_stack.server.ui_url}/runs/flow-run/{waiting.flow_run_id}")
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible(timeout=UI_TIMEOUT_MS)
    resume.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Approve the plan of")).to_be_visible()
    expect(dialog.get_by_text("Channel")).to_have_count(0)  # not the approver's to set
    form_field(dialog, page, "Decision").locator(".p-select-button__icon").click()
    page.get_by_role("option", name="reject").click()
    form_field(dialog, page, "Approver").locator("textarea").fill("Ada Lovelace")
    dialog.get_by_role("button", name="Submit").click()
    refusal = form_field(dialog, page, "Reason").get_by_text(
        "'reason to reject' is a required property"
    )
    expect(refusal).to_be_visible()  # under the Reason field
    assert [w.flow_run_id for w in gate_stack.waiting(run.run_id)] == [waiting.flow_run_id]

    form_field(dialog, page, "Reason").locator("textarea").fill("split it differently")
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden()

    assert run.wait() == 1, run.output()
    plan = gate_stack.manifest(run.run_id).approval("plan")
    assert plan is not None
    assert (plan.decision, plan.reason, plan.channel) == (
        Decision.REJECT,
        "split it differently",
        Channel.UI,
    )
