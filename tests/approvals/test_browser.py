"""An approver decides in Prefect's default UI alone: Debian's chromium, headless.

Prefect 3.9's ``http://127.0.0.1:4200/`` lands on its V2 UI. From there a person opens
Runs (the paused runs are listed), a paused run, the run page's ⋮ menu > Resume, and
decides in the form our gate shows. One run is approved this way. The other, whose
planner wrote markdown and HTML, is reached through the links ``orchestrator approvals``
prints (the runs list filtered to paused runs, then the run's page); its plan must show
exactly as written, and once rejected its row in the runs list says Rejected, not
Completed.

Screenshots of each step go to the test's folder; with
``ORCHESTRATOR_UPDATE_SCREENSHOTS=1`` they also replace ``docs/images/approve-*.png``
(shown in docs/approvals.md and the README).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from schemas import Channel, Decision, RunStatus
from tests.helpers.browser import (
    Screenshots,
    browser_page,
    chromium,
    fill_decision,
    open_resume_form,
    open_run_menu,
    open_runs_list,
    run_row,
    submit_resume,
)

from .conftest import GateStack, PipelineRun

# A whole pipeline run (or two) behind a browser: on a busy 2-core machine, minutes.
pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

# What the literal-text planner wrote (examples/replay/literal/plan-literal-text.yaml).
SUMMARY = "Touch textkit/__init__.py only. **x** <img src=x> [link](http://x)"
TITLE = "Re-export from __init__.py: **x**"
DETAILS = (
    ": must hold: <img src=x> stays text; [link](http://x) is not a link; "
    "files: textkit/__init__.py, docs/<img src=x>.md, [link](http://x).txt"
)


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium() as browser, browser_page(browser, 1280, 900) as page:
        yield page


def test_an_approver_decides_from_the_runs_list_of_the_default_ui(
    gate_stack: GateStack, page: Page, tmp_path: Path
) -> None:
    shots = Screenshots(tmp_path / "screenshots", prefix="approve")
    approved = gate_stack.start("plan-required.yaml", "approve-ui")
    literal = gate_stack.start("plan-literal.yaml", "literal-ui")
    approved_gate = gate_stack.wait_for_gate(approved, "plan")
    literal_gate = gate_stack.wait_for_gate(literal, "plan")

    open_runs_list(page, gate_stack.server.ui_url)
    row = run_row(page, approved_gate.flow_run_id)
    expect(row.get_by_text("Paused", exact=True)).to_be_visible()
    expect(
        run_row(page, literal_gate.flow_run_id).get_by_text("Paused", exact=True)
    ).to_be_visible()
    row.scroll_into_view_if_needed()
    shots.take(page, "runs-list")
    row.get_by_role("link", name=approved.run_id, exact=False).last.click()
    page.wait_for_url(f"**/v2/runs/flow-run/{approved_gate.flow_run_id}**")
    expect(page.get_by_text("Paused", exact=True).first).to_be_visible()
    expect(page.get_by_text("Pausing flow, execution will continue")).to_be_visible()  # logs
    open_run_menu(page)
    shots.take(page, "run-menu")
    page.keyboard.press("Escape")
    expect(page.get_by_role("menu")).to_be_hidden()
    dialog = open_resume_form(page)
    expect(dialog.get_by_role("heading", name="Approve the plan of")).to_be_visible()
    expect(dialog.get_by_role("cell", name="slugify", exact=True)).to_be_visible()
    shots.take(page, "resume-form")
    fill_decision(dialog, page, "approve", "Ada Lovelace", "two small helpers, as asked")
    shots.take(page, "resume-form-filled")
    submit_resume(dialog, page)
    assert approved.wait() == 0, approved.output()
    page.reload()
    expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
    shots.take(page, "run-completed")

    paused_link, run_link = printed_links(gate_stack, literal)
    page.goto(paused_link)  # the runs list filtered to paused runs
    expect(page.get_by_role("button", name="State types")).to_have_text("Paused")
    row = run_row(page, literal_gate.flow_run_id)
    expect(row.get_by_text("Paused", exact=True)).to_be_visible()
    expect(run_row(page, approved_gate.flow_run_id)).to_have_count(0)  # completed by now
    row.scroll_into_view_if_needed()
    shots.take(page, "paused-runs")
    row.get_by_role("link", name=literal.run_id, exact=False).last.click()
    page.wait_for_url(re.compile(re.escape(run_link) + r"(\?.*)?$"))
    reject_the_literal_plan(page, literal, shots)

    open_runs_list(page, gate_stack.server.ui_url)
    rejected_row = run_row(page, literal_gate.flow_run_id)
    expect(rejected_row.get_by_text("Rejected", exact=True)).to_be_visible()
    expect(rejected_row.get_by_text("Completed", exact=True)).to_have_count(0)
    expect(
        run_row(page, approved_gate.flow_run_id).get_by_text("Completed", exact=True)
    ).to_be_visible()
    rejected_row.scroll_into_view_if_needed()
    shots.take(page, "runs-list-decided")
    shots.publish()

    plan = gate_stack.manifest(approved.run_id).approval("plan")
    assert plan is not None
    assert (plan.decision, plan.approver, plan.channel, plan.reason) == (
        Decision.APPROVE,
        "Ada Lovelace",
        Channel.UI,
        "two small helpers, as asked",
    )
    assert gate_stack.manifest(approved.run_id).status is RunStatus.SUCCEEDED
    manifest = gate_stack.manifest(literal.run_id)
    assert manifest.status is RunStatus.REJECTED
    refused = manifest.approval("plan")
    assert refused is not None
    assert (refused.decision, refused.approver, refused.channel) == (
        Decision.REJECT,
        "Grace Hopper",
        Channel.UI,
    )


def printed_links(gate_stack: GateStack, run: PipelineRun) -> tuple[str, str]:
    """What ``orchestrator approvals`` prints: the paused runs page, and ``run``'s page."""
    listed = gate_stack.cli("approvals")
    assert listed.returncode == 0, listed.stderr
    found = re.search(r"paused runs in the Prefect UI: (\S+)", listed.stdout)
    assert found, listed.stdout
    as_json = gate_stack.cli("approvals", "--json")
    assert as_json.returncode == 0, as_json.stderr
    [entry] = [e for e in json.loads(as_json.stdout) if e["run_id"] == run.run_id]
    return found.group(1), entry["ui_url"]


def reject_the_literal_plan(page: Page, run: PipelineRun, shots: Screenshots) -> None:
    """On the run's page: the plan shows as the planner wrote it; reject it."""
    dialog = open_resume_form(page)
    expect(dialog.get_by_text(SUMMARY, exact=True)).to_be_visible()
    expect(dialog.get_by_role("cell", name=TITLE, exact=True)).to_be_visible()
    expect(dialog.get_by_text(DETAILS)).to_be_visible()
    expect(dialog.locator("img")).to_have_count(0)
    expect(dialog.locator("a[href^='http://x']")).to_have_count(0)
    expect(dialog.locator("strong")).to_have_count(0)
    shots.take(page, "literal-plan")
    expect(dialog.get_by_text("Channel")).to_have_count(0)  # not the approver's to set
    fill_decision(dialog, page, "reject", "Grace Hopper", "")
    dialog.get_by_role("button", name="Resume", exact=True).click()
    # A rejection without a reason is refused, in plain words, and the run still waits.
    expect(page.get_by_text(re.compile("reason to reject")).first).to_be_visible()
    assert run.process.poll() is None
    dialog.get_by_role("textbox", name=re.compile(r"^Reason")).fill("not what was asked")
    submit_resume(dialog, page)
    assert run.wait() == 1, run.output()
