"""A real headless browser for the page tests: Debian's chromium driven by Playwright's async API
(its sync API keeps an event loop running in the test's thread, where Django's database calls then
refuse to run). Never `playwright install`: the browser is the system's.

    async with browser_page(chromium, daphne, user) as page:
        await page.goto(page.base + "/")
"""
from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def browser_missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    return None


def require_chromium() -> str:
    """The browser's path; skips the test when it is missing, fails it under CI=true."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the headless browser: {missing}")
        pytest.skip(missing)
    return CHROMIUM if os.path.exists(CHROMIUM) else str(shutil.which("chromium"))


@asynccontextmanager
async def browser_page(chromium: str, daphne: Any, user: Any = None, *, width: int = 1280, height: int = 900,
                       locale: str = "en-US", color_scheme: str = "light",
                       **context_options: Any) -> AsyncIterator[Any]:
    """A page of a fresh browser context on `daphne`, signed in as `user` (None: signed out).
    `page.base` is the server's address; console errors are collected in `page.console_errors`."""
    from asgiref.sync import sync_to_async
    from playwright.async_api import async_playwright

    from tests.chatsocket import session_cookie

    base = f"http://127.0.0.1:{daphne.port}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                                color_scheme=color_scheme, **context_options)
            if user is not None:
                cookie = (await sync_to_async(session_cookie)(user)).split("=", 1)[1]
                await context.add_cookies([{"name": "sessionid", "value": cookie, "url": base}])
            page = await context.new_page()
            page.base = base
            page.console_errors = []
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("pageerror", lambda e: page.console_errors.append(str(e)))
            yield page
        finally:
            await browser.close()
