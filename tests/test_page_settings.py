"""The settings pages in a real headless browser (Debian's chromium, Playwright) against daphne:
create an API key and copy it, switch to the dark theme and to Arabic, import a ChatGPT export and
find its conversations, download everything as Markdown. Screenshots go to docs/screenshots/ when
ATRIUM_SCREENSHOTS=1 (settings-general.png, settings-api-keys.png, ...), else to the test's tmp dir."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from tests.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

ROOT = Path(__file__).resolve().parent.parent
CHATGPT = Path(__file__).parent / "fixtures" / "library" / "chatgpt-conversations.json"
DARK_BACKGROUND = "rgb(20, 23, 28)"  # --bg of the dark theme, portal/static/css/atrium.css


@pytest.fixture
def member(make_user, make_role, make_endpoint):
    role = make_role("ANALYSTS", label="Analysts", can_use_api=True, balance_enabled=True,
                     start_balance=Decimal(5_000_000))
    role.allowed_endpoints.add(make_endpoint("Acme", models=("acme-large", "acme-small")))
    from allauth.account.models import EmailAddress

    user = make_user("anna", name="Anna Analyst", role=role, email="anna@corp.example")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


async def test_create_an_api_key_see_it_once_and_copy_it(chromium, daphne, member, shots):
    from playwright.async_api import expect

    async with browser_page(chromium, daphne, member, permissions=["clipboard-read", "clipboard-write"]) as page:
        await page.goto(page.base + "/settings/usage/")  # the account menu is in every signed-in page's header
        await page.locator(".user-menu summary").click()
        await page.get_by_role("link", name="Settings").click()
        await page.get_by_role("navigation", name="Settings").get_by_role("link", name="API keys").click()
        await page.get_by_label("Name").fill("laptop scripts")
        async with page.expect_navigation(wait_until="load"):  # settings.js (the copy button) has run
            await page.get_by_role("button", name="Create key").click()

        await expect(page.get_by_role("heading", name="Your new API key")).to_be_visible()
        key = await page.get_by_label("API key").input_value()
        assert key.startswith("atr_") and len(key) > 40
        await page.get_by_role("button", name="Copy").click()
        await expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
        assert await page.evaluate("navigator.clipboard.readText()") == key
        await page.screenshot(path=str(shots / "settings-api-key-created.png"), full_page=True)

        await page.reload()  # shown once: afterwards only the list, with the prefix
        await expect(page.get_by_role("heading", name="Your keys")).to_be_visible()
        await expect(page.get_by_role("cell", name="laptop scripts", exact=True)).to_be_visible()
        assert key not in await page.content()
        await page.screenshot(path=str(shots / "settings-api-keys.png"), full_page=True)
        assert page.console_errors == []


async def test_switch_to_the_dark_theme_and_to_arabic(chromium, daphne, member, shots):
    from playwright.async_api import expect

    async with browser_page(chromium, daphne, member) as page:
        await page.goto(page.base + "/settings/general/")
        await expect(page.get_by_role("heading", name="What you can use")).to_be_visible()
        await expect(page.get_by_text("acme-large, acme-small")).to_be_visible()
        await page.screenshot(path=str(shots / "settings-general.png"), full_page=True)

        await page.get_by_label("Dark").check()
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Save theme").click()
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        await expect(page.locator("body")).to_have_css("background-color", DARK_BACKGROUND)
        await expect(page.get_by_label("Dark")).to_be_checked()
        await page.screenshot(path=str(shots / "settings-general-dark.png"), full_page=True)

        await page.get_by_label("Language").select_option("ar")
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Save language").click()
        await expect(page.locator("html")).to_have_attribute("dir", "rtl")
        await expect(page.locator("html")).to_have_attribute("lang", "ar")
        # the navigation stays on the start side: the right in Arabic
        nav = await page.locator(".settings-nav").bounding_box()
        main = await page.locator("#app-main").bounding_box()
        assert nav is not None and main is not None and nav["x"] > main["x"]
        await page.screenshot(path=str(shots / "settings-general-arabic.png"), full_page=True)
        assert page.console_errors == []


async def test_import_a_chatgpt_export_find_it_and_export_markdown(chromium, daphne, member, shots, tmp_path):
    from playwright.async_api import expect

    async with browser_page(chromium, daphne, member) as page:
        await page.goto(page.base + "/settings/data/")
        await page.get_by_label("Export file").set_input_files(str(CHATGPT))
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Import").click()

        await expect(page.get_by_text("Imported 2 conversations")).to_be_visible()
        link = page.get_by_role("link", name="Sourdough starter")
        await expect(link).to_have_attribute("href", re.compile(r"^/c/[0-9a-f-]{36}$"))
        listed = await page.request.get(page.base + "/api/conversations")
        titles = {item["title"] for item in (await listed.json())["items"]}
        assert {"Sourdough starter", "日本語の質問"} <= titles
        await page.screenshot(path=str(shots / "settings-data.png"), full_page=True)

        await page.get_by_label("Format").select_option("md")
        async with page.expect_download() as waiting:
            await page.get_by_role("button", name="Download").click()
        download = await waiting.value
        assert download.suggested_filename.endswith(".md")
        saved = tmp_path / download.suggested_filename
        await download.save_as(str(saved))
        body = saved.read_text(encoding="utf-8")
        assert "Sourdough starter" in body and "How often should I feed my sourdough starter?" in body
        assert page.console_errors == []


async def test_allauths_account_pages_open_in_the_settings_shell(chromium, daphne, member, shots):
    from playwright.async_api import expect

    async with browser_page(chromium, daphne, member) as page:
        await page.goto(page.base + "/settings/account/")
        await expect(page.locator("#app-main").get_by_text("anna@corp.example")).to_be_visible()
        await page.get_by_role("link", name="Manage two-factor authentication").click()
        await expect(page).to_have_url(page.base + "/accounts/2fa/")
        nav = page.get_by_role("navigation", name="Settings")
        await expect(nav.get_by_role("link", name="Account & security")).to_have_attribute("aria-current", "page")
        await page.screenshot(path=str(shots / "settings-account-2fa.png"), full_page=True)
        await nav.get_by_role("link", name="Usage").click()
        await expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
        assert page.console_errors == []


async def test_every_settings_page_fits_a_phone(chromium, daphne, member, shots):
    from playwright.async_api import expect

    async with browser_page(chromium, daphne, member, width=390, height=844) as page:
        for path in ("general", "account", "provider-keys", "api-keys", "usage", "shared-links", "data"):
            await page.goto(f"{page.base}/settings/{path}/")
            await expect(page.locator("#app-main h1")).to_be_visible()
            # the page never scrolls sideways; only a wide table scrolls inside its own box
            wide = await page.evaluate(
                "[document.documentElement, document.querySelector('#app-main')]"
                ".map(e => e.scrollWidth - e.clientWidth)")
            assert wide == [0, 0], path
        await page.goto(page.base + "/settings/general/")
        await page.screenshot(path=str(shots / "settings-phone.png"), full_page=True)
        assert page.console_errors == []
