"""The chat page's conversation sidebar in a real headless browser (Debian's chromium driven by
Playwright, a daphne serving the chat page, `/` and `/c/<id>`). What a user sees and does:
conversations grouped by day, more as the list scrolls, search and jump to a message, rename,
delete after confirming, bookmarks, archive, the drawer at phone width, and titles that are only
ever text.

Screenshots of the main states go to docs/screenshots/sidebar-*.png with ATRIUM_SCREENSHOTS=1."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from tests.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

PAGE_SIZE = 30  # chat.sidebar.PAGE_SIZE


async def screenshot(page, folder: Path, state: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"sidebar-{state}.png"), animations="disabled")


def noon_zone() -> str:
    """A fixed-offset time zone where it is now about noon, so "today" minus an hour and "yesterday"
    are the days they say whatever time the tests run (Etc/GMT-5 is UTC+5)."""
    offset = 12 - dt.datetime.now(dt.UTC).hour
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@pytest.fixture
def alice(make_user, make_role):
    return make_user("alice", role=make_role("STAFF"))  # a role's defaults include bookmarks


def conversation(user, title: str, *, ago: dt.timedelta = dt.timedelta(0), **fields):
    from chat.models import Conversation

    convo = Conversation.objects.create(user=user, title=title, **fields)
    Conversation.objects.filter(pk=convo.pk).update(updated_at=dt.datetime.now(dt.UTC) - ago)
    return convo


def message(convo, text: str, role: str = "user"):
    from chat.models import Message

    return Message.objects.create(conversation=convo, user=convo.user, role=role, text=text,
                                  content=[{"type": "text", "text": text}])


def page_of(chromium, daphne, user, **options):
    options.setdefault("timezone_id", noon_zone())
    return browser_page(chromium, daphne, user, **options)


async def titles(page, selector: str = "#sb-list .sb-link") -> list[str]:
    return await page.locator(selector).all_text_contents()


async def test_conversations_are_grouped_by_day_the_open_one_marked_and_more_load_as_the_list_scrolls(
        chromium, daphne, alice, make_user, shots):
    from playwright.async_api import expect

    def seed():
        day = dt.timedelta(days=1)
        for n in range(PAGE_SIZE):  # old enough to be past the first page
            conversation(alice, f"Old {n:02d}", ago=100 * day + dt.timedelta(minutes=n))
        made = {
            "older": conversation(alice, "Budget review", ago=70 * day),
            "month": conversation(alice, "Travel plans", ago=15 * day),
            "week": conversation(alice, "Release notes", ago=4 * day),
            "yesterday": conversation(alice, "Team lunch", ago=day),
            "today": conversation(alice, "Quarterly plan", ago=dt.timedelta(hours=1)),
        }
        conversation(alice, "Temporary one", temporary=True)
        conversation(alice, "Archived one", archived=True)
        conversation(make_user("bob"), "Bob's secret")
        return made

    made = await sync_to_async(seed)()
    async with page_of(chromium, daphne, alice) as page:
        response = await page.goto(f"{page.base}/c/{made['week'].pk}")
        served = await response.text()
        # the first page comes with the page (the item <template> aside)
        assert len(re.findall(r'<li class="sb-item" data-id="[0-9a-f-]{36}"', served)) == PAGE_SIZE
        groups = page.locator("#sb-list .sb-group-title")
        await expect(groups.first).to_have_text("Today")
        older = dt.datetime.now(dt.UTC) - dt.timedelta(days=70)
        local = older + dt.timedelta(hours=12 - dt.datetime.now(dt.UTC).hour)
        expected = ["Today", "Yesterday", "Previous 7 days", "Previous 30 days", local.strftime("%B %Y")]
        assert (await groups.all_text_contents())[:5] == expected
        for title, group in [("Quarterly plan", "Today"), ("Team lunch", "Yesterday"),
                             ("Release notes", "Previous 7 days"), ("Travel plans", "Previous 30 days")]:
            section = page.locator(".sb-group", has=page.get_by_role("link", name=title, exact=True))
            await expect(section.locator(".sb-group-title")).to_have_text(group)
        assert (await titles(page))[:5] == ["Quarterly plan", "Team lunch", "Release notes", "Travel plans",
                                              "Budget review"]
        current = page.locator("#sb-list [aria-current=page]")
        await expect(current).to_have_text("Release notes")
        await expect(page.get_by_role("link", name="New chat")).to_have_attribute("href", "/")
        await screenshot(page, shots, "light")

        await page.locator("#sb-list .sb-item").last.scroll_into_view_if_needed()
        await expect(page.locator("#sb-list .sb-item")).to_have_count(PAGE_SIZE + 5)
        listed = await titles(page)
        assert listed[-1] == f"Old {PAGE_SIZE - 1:02d}" and len(set(listed)) == PAGE_SIZE + 5
        assert not {"Temporary one", "Archived one", "Bob's secret"} & set(listed)
        await expect(page.locator("#sb-sentinel")).to_be_hidden()
        assert page.console_errors == []


async def test_a_title_with_markup_is_shown_as_text_everywhere(chromium, daphne, alice, shots):
    payload = '<img src=x onerror="window.pwned=1">'
    convo = await sync_to_async(conversation)(alice, payload)
    async with page_of(chromium, daphne, alice, color_scheme="dark") as page:
        await page.goto(f"{page.base}/c/{convo.pk}")
        link = page.locator("#sb-list .sb-link").first
        await link.wait_for()
        assert await link.text_content() == payload
        assert await page.locator("#sidebar img").count() == 0
        # and as the chat pane announces a new title
        await page.evaluate("""(title) => document.dispatchEvent(new CustomEvent("atrium:conversation",
                               {detail: {id: document.getElementById("sidebar-panel").dataset.current, title}}))""",
                            payload + "!")
        assert await link.text_content() == payload + "!"
        assert await page.locator("#sidebar img").count() == 0
        assert await page.evaluate("window.pwned") is None
        await screenshot(page, shots, "dark")
        assert page.console_errors == []


async def test_a_conversation_the_pane_creates_appears_at_the_top_marked_open(chromium, daphne, alice):
    from playwright.async_api import expect

    await sync_to_async(conversation)(alice, "Older one", ago=dt.timedelta(days=3))
    async with page_of(chromium, daphne, alice) as page:
        await page.goto(page.base + "/")
        await expect(page.locator("#sb-list .sb-group-title")).to_have_text(["Previous 7 days"])
        await page.evaluate("""() => document.dispatchEvent(new CustomEvent("atrium:conversation",
            {detail: {id: "0b0c4d3e-9a51-4a35-a3f8-6a0d7c2a1f10", title: "New Chat", new: true}}))""")
        await expect(page.locator("#sb-list .sb-group-title")).to_have_text(["Today", "Previous 7 days"])
        await expect(page.locator("#sb-list [aria-current=page]")).to_have_text("New Chat")
        await page.evaluate("""() => document.dispatchEvent(new CustomEvent("atrium:conversation",
            {detail: {id: "0b0c4d3e-9a51-4a35-a3f8-6a0d7c2a1f10", title: "Packing list", new: false}}))""")
        await expect(page.locator("#sb-list [aria-current=page]")).to_have_text("Packing list")
        assert await titles(page) == ["Packing list", "Older one"]
        assert page.console_errors == []


async def test_search_shows_snippets_as_text_moves_by_keyboard_and_opens_the_message(chromium, daphne, alice, shots):
    from playwright.async_api import expect

    def seed():
        convo = conversation(alice, "Deploy notes")
        message(convo, "How do we deploy the gateway?")
        hit = message(convo, "<script>window.pwned=1</script> The gateway deploy uses blue-green.", "assistant")
        cjk = message(convo, "<script>window.pwned=1</script> 蓝绿部署")
        other = conversation(alice, "Gateway questions")
        message(other, "Which gateway port?")
        return convo, hit, cjk

    convo, hit, cjk = await sync_to_async(seed)()
    async with page_of(chromium, daphne, alice) as page:
        await page.goto(page.base + "/")
        box = page.get_by_role("searchbox", name="Search conversations")
        # (a CJK query is a substring match on every database: the snippet is the raw text around it)
        await box.fill("蓝绿部署")
        results = page.locator("#sb-results a")
        await expect(results).to_have_count(1)
        snippet = results.first.locator(".sb-hit-snippet")
        await expect(snippet).to_contain_text("<script>window.pwned=1</script> 蓝绿部署")
        assert await page.locator("#sb-results script").count() == 0
        assert await snippet.locator("mark").all_text_contents() == ["蓝绿部署"]
        await expect(page.locator("#sb-search-panel [role=status]")).to_have_text("1 match")
        await expect(results.first).to_have_attribute("href", f"/c/{convo.pk}?m={cjk.pk}")
        await expect(page.locator("#sb-scroll")).to_be_hidden()

        await box.fill("gateway")
        await expect(results).to_have_count(3)
        await screenshot(page, shots, "search")
        await box.press("ArrowDown")
        await expect(results.nth(0)).to_be_focused()
        await page.keyboard.press("ArrowDown")
        await expect(results.nth(1)).to_be_focused()
        await page.keyboard.press("Escape")  # clears and goes back to the list
        await expect(box).to_be_focused()
        await expect(box).to_have_value("")
        await expect(page.locator("#sb-scroll")).to_be_visible()

        await box.fill("blue-green")
        await expect(results).to_have_count(1)
        await box.press("ArrowDown")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(rf"/c/{convo.pk}\?m={hit.pk}$"))
        await expect(page.locator("#sb-list [aria-current=page]")).to_have_text("Deploy notes")
        assert await page.evaluate("window.pwned") is None
        assert page.console_errors == []


async def test_rename_in_place_enter_saves_and_escape_cancels(chromium, daphne, alice, shots):
    from playwright.async_api import expect

    from chat.models import Conversation

    convo = await sync_to_async(conversation)(alice, "Draft title")
    async with page_of(chromium, daphne, alice) as page:
        await page.goto(page.base + "/")
        item = page.locator("#sb-list .sb-item").first
        await item.get_by_role("button", name="Options: Draft title").click()
        menu = page.get_by_role("menu")
        await expect(menu.get_by_role("menuitem", name="Rename")).to_be_focused()
        await screenshot(page, shots, "menu")
        await page.keyboard.press("Enter")
        field = item.get_by_role("textbox", name="Conversation title")
        await expect(field).to_be_focused()
        await field.fill("Something else")
        await field.press("Escape")
        await expect(field).to_have_count(0)
        await expect(item.locator(".sb-link")).to_have_text("Draft title")

        await item.get_by_role("button", name="Options: Draft title").click()
        await menu.get_by_role("menuitem", name="Rename").click()
        await field.fill("Launch checklist")
        await field.press("Enter")
        await expect(item.locator(".sb-link")).to_have_text("Launch checklist")
        await expect(item.locator(".sb-link")).to_be_focused()
        assert await sync_to_async(lambda: Conversation.objects.get(pk=convo.pk).title)() == "Launch checklist"
        assert page.console_errors == []


async def test_delete_asks_first_and_deleting_the_open_conversation_goes_to_a_new_chat(
        chromium, daphne, alice, shots):
    from playwright.async_api import expect

    from chat.models import Conversation

    keep = await sync_to_async(conversation)(alice, "Keep me", ago=dt.timedelta(hours=2))
    doomed = await sync_to_async(conversation)(alice, "Delete me")
    async with page_of(chromium, daphne, alice) as page:
        await page.goto(f"{page.base}/c/{doomed.pk}")
        options = page.get_by_role("button", name="Options: Delete me")
        await options.focus()
        await page.keyboard.press("ArrowDown")  # opens the menu
        await page.keyboard.press("End")
        await expect(page.get_by_role("menuitem", name="Delete…")).to_be_focused()
        await page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Delete this conversation?")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("Delete me")
        await screenshot(page, shots, "delete")
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        await expect(options).to_be_focused()
        assert await sync_to_async(Conversation.objects.filter(pk=doomed.pk).exists)()

        await options.click()
        await page.get_by_role("menuitem", name="Delete…").click()
        await dialog.get_by_role("button", name="Delete", exact=True).click()
        await page.wait_for_url(page.base + "/")
        assert await titles(page) == ["Keep me"]
        assert not await sync_to_async(Conversation.objects.filter(pk=doomed.pk).exists)()
        assert await sync_to_async(Conversation.objects.filter(pk=keep.pk).exists)()
        assert page.console_errors == []


async def test_bookmark_a_conversation_with_a_new_bookmark_and_show_only_those(chromium, daphne, alice):
    from playwright.async_api import expect

    from chat.models import Tag

    def seed():
        Tag.objects.create(user=alice, name="Ideas")
        conversation(alice, "Plain one", ago=dt.timedelta(hours=2))
        conversation(alice, "Important one")

    await sync_to_async(seed)()
    async with page_of(chromium, daphne, alice) as page:
        await page.goto(page.base + "/")
        filters = page.get_by_role("group", name="Show only a bookmark")
        await expect(filters.get_by_role("button")).to_have_text(["Ideas 0"])
        await page.get_by_role("button", name="Options: Important one").click()
        await page.get_by_role("menuitem", name="Bookmarks…").click()
        dialog = page.get_by_role("dialog", name="Bookmarks")
        await expect(dialog.get_by_role("checkbox", name="Ideas")).not_to_be_checked()
        await dialog.get_by_role("textbox", name="New bookmark").fill("Work")
        await dialog.get_by_role("textbox", name="New bookmark").press("Enter")
        await expect(dialog.get_by_role("checkbox", name="Work")).to_be_checked()
        await expect(dialog).to_be_visible()  # Enter added the bookmark; it did not close the dialog
        await dialog.get_by_role("checkbox", name="Ideas").check()
        await dialog.get_by_role("button", name="Save").click()
        await expect(filters.get_by_role("button")).to_have_text(["Ideas 1", "Work 1"])

        await filters.get_by_role("button", name="Work").click()
        await expect(filters.get_by_role("button", name="Work")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#sb-list .sb-link")).to_have_text(["Important one"])
        await filters.get_by_role("button", name="Work").click()
        await expect(page.locator("#sb-list .sb-link")).to_have_text(["Important one", "Plain one"])
        names = await sync_to_async(lambda: sorted(Tag.objects.filter(conversations__title="Important one")
                                                   .values_list("name", flat=True)))()
        assert names == ["Ideas", "Work"]
        assert page.console_errors == []


async def test_archive_moves_a_conversation_to_the_archived_section_and_restore_brings_it_back(
        chromium, daphne, alice):
    from playwright.async_api import expect

    from chat.models import Conversation

    await sync_to_async(conversation)(alice, "Old archive", archived=True, ago=dt.timedelta(days=40))
    convo = await sync_to_async(conversation)(alice, "Finished project")
    await sync_to_async(conversation)(alice, "Ongoing", ago=dt.timedelta(hours=2))
    async with page_of(chromium, daphne, alice) as page:
        await page.goto(page.base + "/")
        await page.get_by_role("button", name="Options: Finished project").click()
        await page.get_by_role("menuitem", name="Archive", exact=True).click()
        await expect(page.locator("#sb-list .sb-link")).to_have_text(["Ongoing"])
        assert await sync_to_async(lambda: Conversation.objects.get(pk=convo.pk).archived)()

        await page.locator("#sb-archived summary").click()  # loads the archive
        archived = page.locator("#sb-archived-list .sb-link")
        await expect(archived).to_have_text(["Finished project", "Old archive"])
        await page.get_by_role("button", name="Options: Finished project").click()
        await expect(page.get_by_role("menuitem", name="Archive", exact=True)).to_be_hidden()
        await page.get_by_role("menuitem", name="Restore from archive").click()
        await expect(archived).to_have_text(["Old archive"])
        await expect(page.locator("#sb-list .sb-link")).to_have_text(["Finished project", "Ongoing"])
        assert not await sync_to_async(lambda: Conversation.objects.get(pk=convo.pk).archived)()
        assert page.console_errors == []


async def test_at_phone_width_the_sidebar_is_a_drawer_the_header_button_opens(chromium, daphne, alice, shots):
    from playwright.async_api import expect

    await sync_to_async(conversation)(alice, "Pocket notes")
    async with page_of(chromium, daphne, alice, width=390, height=844) as page:
        await page.goto(page.base + "/")
        toggle = page.locator("header").get_by_role("button", name="Conversations")
        link = page.get_by_role("link", name="Pocket notes")
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(link).to_be_hidden()
        await screenshot(page, shots, "phone-closed")
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(link).to_be_visible()
        await expect(page.get_by_role("searchbox", name="Search conversations")).to_be_focused()
        await screenshot(page, shots, "phone")
        await page.keyboard.press("Escape")
        await expect(link).to_be_hidden()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(toggle).to_be_focused()

        await toggle.click()
        await expect(link).to_be_visible()
        await page.mouse.click(380, 400)  # the backdrop, beside the drawer
        await expect(link).to_be_hidden()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        assert page.console_errors == []


async def test_in_a_right_to_left_language_the_drawer_opens_from_the_right(chromium, daphne, alice):
    from playwright.async_api import expect

    await sync_to_async(conversation)(alice, "ملاحظات")
    async with page_of(chromium, daphne, alice, width=390, height=844, locale="ar") as page:
        await page.goto(page.base + "/")
        assert await page.locator("html").get_attribute("dir") == "rtl"
        toggle = page.locator("header .sb-toggle")
        await toggle.click()
        link = page.get_by_role("link", name="ملاحظات")
        await expect(link).to_be_visible()
        panel = page.locator("#sidebar-panel")
        await expect(panel).to_have_class(re.compile(r"\bopen\b"))
        await page.wait_for_function(
            "() => getComputedStyle(document.getElementById('sidebar-panel')).transform === 'none'")
        box = await panel.bounding_box()
        assert box is not None and box["x"] > 0 and abs(box["x"] + box["width"] - 390) < 1
        await page.keyboard.press("Escape")
        await expect(link).to_be_hidden()
        assert page.console_errors == []
