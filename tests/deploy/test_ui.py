"""The Prefect UI in a real browser (Debian's chromium, headless): run, approve, find.

An engineer's path through the UI: open the pipeline deployment, start a custom run
from its form, open the run, approve its plan in the Resume form, watch it complete,
and find the manifest in the run's summary artifact. Screenshots of each step go to the
test's folder; with ``ORCHESTRATOR_UPDATE_SCREENSHOTS=1`` they also replace the
README's in ``docs/images/``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from schemas import RunStatus
from tests.helpers.browser import browser_page, chromium, form_field

from .conftest import Served
from .helpers import approval_task, manifest_of, prefect_client, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.browser]

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
UI_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with browser_page(browser, 1400, 900) as page:
        yield page


class Screenshots:
    """Numbered screenshots in a folder; copied to docs/images on request."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=path)
        self.taken.append(path)

    def publish(self) -> None:
        if os.environ.get("ORCHESTRATOR_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            for path in self.taken:
                shutil.copy(path, DOCS_IMAGES / path.name)


def runs_of(served: Served, deployment_id: UUID) -> list[UUID]:
    with prefect_client(served.api_url) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return [run.id for run in runs]


def new_run(served: Served, deployment_id: UUID, known: set[UUID]) -> UUID:
    """The one flow run of the deployment not in ``known`` (waits up to UI_TIMEOUT_MS)."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while True:
        new = [run for run in runs_of(served, deployment_id) if run not in known]
        if new:
            assert len(new) == 1, f"the form created {len(new)} flow runs"
            return new[0]
        assert time.monotonic() < deadline, "the form created no flow run"
        time.sleep(0.2)


def test_custom_run_from_the_ui_is_approved_and_completes(
    served: Served, page: Page, tmp_path: Path
) -> None:
    shots = Screenshots(tmp_path / "screenshots")
    with prefect_client(served.api_url) as client:
        deployment_id = client.read_deployment_by_name("pipeline/pipeline").id

    page.goto(f"{served.info.ui_url}/deployments/deployment/{deployment_id}")
    expect(page.get_by_text("flows/pipeline.py:pipeline")).to_be_visible()
    shots.take(page, "deployment")
    parameters = {"task_file": approval_task(tmp_path), "repo": served.info.sample_repo}
    flow_run_id = start_custom_run(page, served, deployment_id, parameters, shots)
    wait_for_the_plan_gate(served, flow_run_id)
    approve_the_plan(page, shots)
    expect(page.locator(".state-badge", has_text="Completed").first).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    page.wait_for_timeout(1000)  # the timeline draws its last subflows
    shots.take(page, "completed-run")
    manifest_shown = open_run_summary(page, shots)
    shots.publish()

    with prefect_client(served.api_url) as client:
        final = wait_final(client, flow_run_id)
    assert final.state is not None and final.state.is_completed()
    path, manifest = manifest_of(served.home, final.id)
    assert manifest_shown == str(path)
    assert manifest.status is RunStatus.SUCCEEDED
    approval = manifest.approvals[0]
    assert approval.approver == "Ada Lovelace"
    assert approval.channel is not None and approval.channel.value == "ui"


def start_custom_run(
    page: Page,
    served: Served,
    deployment_id: UUID,
    parameters: dict[str, Path],
    shots: Screenshots,
) -> UUID:
    """Run > Custom run, fill the form, submit; open the new run from the deployment page."""
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()
    page.wait_for_url("**/run?**")
    # The form is ready once it shows the deployment's defaults (prefect.yaml).
    expect(textarea(page, "task_file")).to_have_value("examples/tasks/add-text-helpers.yaml")
    for name, value in parameters.items():
        textarea(page, name).fill(str(value))
        expect(textarea(page, name)).to_have_value(str(value))
    shots.take(page, "custom-run-form")
    known = set(runs_of(served, deployment_id))
    page.get_by_role("button", name="Submit").click()
    # The form validates the parameters on the server, creates the run, then navigates:
    # on a busy machine each of those can take long, so wait on the run itself first.
    flow_run_id = new_run(served, deployment_id, known)
    page.wait_for_url(re.compile(r"/deployments/deployment/[^/?]+(\?.*)?$"), timeout=UI_TIMEOUT_MS)
    # The deployment page lists the new run (its list does not poll: reload it, as a user
    # would, when the run came after the page had loaded).
    run_link = page.locator(f"a[href$='/runs/flow-run/{flow_run_id}']").first
    if not _visible_soon(run_link):
        page.reload()
    if _visible_soon(run_link, timeout_ms=5000):
        run_link.click()
    else:
        # The list's default filter, "All except scheduled", hides a run that already
        # waits at its plan gate (the UI counts Paused as scheduled): open it directly.
        assert run_state(served, flow_run_id) == "PAUSED", "the new run is not listed"
        page.goto(f"{served.info.ui_url}/runs/flow-run/{flow_run_id}")
    page.wait_for_url(f"**/runs/flow-run/{flow_run_id}**")
    return flow_run_id


def run_state(served: Served, flow_run_id: UUID) -> str | None:
    with prefect_client(served.api_url) as client:
        state = client.read_flow_run(flow_run_id).state
    return state.type.value if state else None


def _visible_soon(locator: Locator, timeout_ms: float = 3000) -> bool:
    try:
        locator.wait_for(state="visible", timeout=timeout_ms)
    except PlaywrightTimeoutError:
        return False
    return True


def textarea(page: Page, parameter: str) -> Locator:
    return form_field(page, page, f"{parameter} (").locator("textarea")


def wait_for_the_plan_gate(served: Served, flow_run_id: UUID) -> None:
    """Until the run is paused at the plan gate with its form saved (the UI builds the
    Resume form from it; a click before it is saved submits nothing)."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    with prefect_client(served.api_url) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            paused = run.state is not None and run.state.is_paused()
            if paused and client.filter_flow_run_input(
                flow_run_id=flow_run_id,
                key_prefix="paused-plan-schema",
                limit=1,
                exclude_keys=set(),
            ):
                return
            assert time.monotonic() < deadline, "the run never paused at the plan gate"
            time.sleep(0.2)


def approve_the_plan(page: Page, shots: Screenshots) -> None:
    """Wait for the plan gate's pause, then approve it in the Resume form."""
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("Paused").first).to_be_visible()
    shots.take(page, "paused-for-approval")
    resume.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Approve the plan of")).to_be_visible()
    # The select opens from its icon (a click on its face only focuses it).
    form_field(dialog, page, "Decision").locator(".p-select-button__icon").click()
    page.get_by_role("option", name="approve").click()
    form_field(dialog, page, "Approver").locator("textarea").fill("Ada Lovelace")
    form_field(dialog, page, "Reason").locator("textarea").fill("two small helpers, as asked")
    shots.take(page, "approve-form")
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden()  # the server took the input


def open_run_summary(page: Page, shots: Screenshots) -> str:
    """Artifacts > the run's summary; the manifest path it shows."""
    page.get_by_text("Artifacts", exact=True).click()
    page.get_by_text("run-add-text-helpers-").first.click()
    manifest = page.locator("li", has_text="manifest:").locator("code")
    expect(manifest).to_be_visible()
    shots.take(page, "run-summary-with-manifest")
    return manifest.inner_text().strip()
