"""Debian's chromium, headless, through Playwright: one launch and one timeout policy.

A busy 2-core machine (CI) renders the Prefect UI slowly: Playwright's defaults (5 s for
an expectation, 30 s for an action) fail there long before anything is wrong, so every
browser test uses the longer step timeout set here.

Also what the browser tests share about Prefect 3.9's default UI (the V2 UI, where
``http://127.0.0.1:4200/`` lands): a run's row in the runs list, its Resume form (in the
run page's ⋮ menu), and the numbered screenshots the docs show.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STEP_TIMEOUT_MS = 60_000
RESUME_TIMEOUT_MS = 180_000
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
UPDATE_SCREENSHOTS_ENV = "ORCHESTRATOR_UPDATE_SCREENSHOTS"


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium, closed on exit."""
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_page(browser: Browser, width: int, height: int) -> Iterator[Page]:
    """A page in a fresh context (no cookies or storage shared between tests)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


class Screenshots:
    """Numbered screenshots (``<prefix>-NN-<name>.png``) in a folder; with
    ``ORCHESTRATOR_UPDATE_SCREENSHOTS=1`` :meth:`publish` copies them to docs/images."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.taken: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str) -> None:
        path = self.folder / f"{self.prefix}-{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=path)
        self.taken.append(path)

    def publish(self) -> None:
        if os.environ.get(UPDATE_SCREENSHOTS_ENV) == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            for old in DOCS_IMAGES.glob(f"{self.prefix}-*.png"):
                old.unlink()
            for path in self.taken:
                shutil.copy(path, DOCS_IMAGES / path.name)


def open_runs_list(page: Page, ui_url: str) -> None:
    """Open the UI where people land, then its Runs page from the sidebar, subflows hidden
    (each pipeline run's phases are subflow runs that would fill the list)."""
    page.goto(ui_url)
    page.wait_for_url(re.compile(r"/v2/"))  # the server redirects to its default UI
    page.get_by_role("link", name="Runs", exact=True).click()
    page.wait_for_url(re.compile(r"/v2/runs"))
    # The list has loaded (the page is live) once it counts its runs.
    expect(page.get_by_text(re.compile(r"^\d+ Flow runs?$"))).to_be_visible()
    hide = page.get_by_role("switch", name="Hide subflows")
    hide.check()
    expect(hide).to_be_checked()


def run_row(page: Page, flow_run_id: UUID | str) -> Locator:
    """The runs list's row of one flow run (the row holds a checkbox; its link the id)."""
    link = page.locator(f"a[href$='/runs/flow-run/{flow_run_id}']")
    return page.get_by_role("listitem").filter(has=link).filter(has=page.get_by_role("checkbox"))


def settled(locator: Locator) -> None:
    """Until the element's opening animations (menus and dialogs fade in) have finished,
    so that a screenshot shows it as a person sees it."""
    # An animation cancelled by a re-render rejects its promise: that one is over too.
    locator.evaluate(
        "e => Promise.all(e.getAnimations({subtree: true}).map(a => a.finished.catch(() => null)))"
    )


def open_run_menu(page: Page) -> Locator:
    """On a run's page, its ⋮ menu (the page's first "Open menu" button), open.

    Opened from the keyboard: while the run graph lays itself out, its canvas can lie
    over the button and take the click.
    """
    page.get_by_role("button", name="Open menu").first.press("Enter")
    menu = page.get_by_role("menu")
    expect(menu.get_by_role("menuitem", name="Resume")).to_be_visible()
    settled(menu)
    return menu


def open_resume_form(page: Page) -> Locator:
    """On a paused run's page: ⋮ > Resume; the form's dialog."""
    open_run_menu(page).get_by_role("menuitem", name="Resume").click()
    dialog = page.get_by_role("dialog", name="Resume Flow Run")
    expect(dialog).to_be_visible()
    settled(dialog)
    return dialog


def fill_decision(dialog: Locator, page: Page, decision: str, approver: str, reason: str) -> None:
    """Fill the gate's form: Decision (a select), Approver and Reason."""
    dialog.get_by_role("button", name="Select Decision").click()
    page.get_by_role("option", name=decision, exact=True).click()
    expect(dialog.get_by_role("button", name="Select Decision")).to_have_text(decision)
    dialog.get_by_role("textbox", name="Approver").fill(approver)
    dialog.get_by_role("textbox", name=re.compile(r"^Reason")).fill(reason)


def submit_resume(dialog: Locator, page: Page) -> None:
    """The form's Resume button; the dialog closes once the server took the input (on a
    busy machine the resume can take long; a refusal shows as a notification)."""
    dialog.get_by_role("button", name="Resume", exact=True).click()
    try:
        expect(dialog).to_be_hidden(timeout=RESUME_TIMEOUT_MS)
    except AssertionError:
        notices = page.get_by_role("region", name=re.compile("Notifications")).inner_text()
        raise AssertionError(f"the Resume form stayed open; notifications: {notices!r}") from None


def form_field(scope: Page | Locator, page: Page, label: str) -> Locator:
    """A Prefect schema form's property whose label starts with ``label`` (the V1 UI)."""
    name = page.locator(".schema-form-property__label", has_text=label)
    return scope.locator(".schema-form-property").filter(has=name)
