"""Debian's chromium, headless, through Playwright: one launch and one timeout policy.

A busy 2-core machine (CI) renders the Prefect UI slowly: Playwright's defaults (5 s for
an expectation, 30 s for an action) fail there long before anything is wrong, so every
browser test uses the longer step timeout set here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


def form_field(scope: Page | Locator, page: Page, label: str) -> Locator:
    """A Prefect schema form's property whose label starts with ``label``."""
    name = page.locator(".schema-form-property__label", has_text=label)
    return scope.locator(".schema-form-property").filter(has=name)
