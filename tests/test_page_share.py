"""Sharing and exporting a conversation from the chat page's sidebar menu, and the temporary-chat
toggle, in a real headless browser (Debian's chromium driven by Playwright) against daphne: a share
link of the branch the chat shows, opened signed out, stops at the message the chat showed; a role
without the share flag has no Share item; Export downloads the conversation; a temporary chat is
never listed in the sidebar."""
from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from asgiref.sync import sync_to_async

from tests.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


@pytest.fixture
def alice(make_user, make_role):
    return make_user("alice", role=make_role("STAFF"))  # a role's defaults include sharing and temporary chats


def say(convo, role: str, text: str, parent=None):
    from chat.models import Message

    return Message.objects.create(conversation=convo, user=convo.user, role=role, text=text, parent=parent,
                                  content=[{"type": "text", "text": text}])


def branched(user):
    """Hello → Hi there, then two answers to it: "Tell me about cats" (older) and "Tell me about
    dogs" (newer, the branch the chat shows by default)."""
    from chat.models import Conversation

    convo = Conversation.objects.create(user=user, title="Pets talk")
    hello = say(convo, "user", "Hello")
    hi = say(convo, "assistant", "Hi there", hello)
    cats = say(convo, "user", "Tell me about cats", hi)
    cats_answer = say(convo, "assistant", "Cats purr.", cats)
    dogs = say(convo, "user", "Tell me about dogs", hi)
    say(convo, "assistant", "Dogs bark.", dogs)
    return convo, cats, cats_answer


def local_day(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


async def test_share_the_branch_shown_and_a_signed_out_reader_sees_it_up_to_that_message(chromium, daphne, alice):
    from playwright.async_api import expect

    from chat.models import ShareLink

    convo, cats, cats_answer = await sync_to_async(branched)(alice)
    async with browser_page(chromium, daphne, alice, timezone_id="UTC",
                            permissions=["clipboard-read", "clipboard-write"]) as page:
        await page.goto(f"{page.base}/c/{convo.pk}?m={cats.pk}")  # the cats branch, not the newest
        await expect(page.locator(".msg-content").last).to_have_text("Cats purr.")
        await page.get_by_role("button", name="Options: Pets talk").click()
        await page.get_by_role("menuitem", name="Share…").click()
        dialog = page.get_by_role("dialog", name="Share this conversation")
        await expect(dialog).to_contain_text("Messages written after it are not shared.")
        await expect(dialog.get_by_role("link", name="Revoke links in Settings → Shared links")).to_have_attribute(
            "href", "/settings/shared-links/")

        expiry = dialog.get_by_label("Link valid until (optional)")
        await expiry.fill(local_day(-1))
        await dialog.get_by_role("button", name="Create link").click()
        refused = "The expiry date must be in the future."  # the API's words
        await expect(dialog.get_by_role("alert")).to_have_text(refused)
        await expiry.fill(local_day(1))
        await dialog.get_by_role("button", name="Create link").click()
        link = dialog.get_by_role("textbox", name="Link")
        await expect(link).to_have_value(re.compile(r"/share/[\w-]+$"))
        url = await link.input_value()
        await dialog.get_by_role("button", name="Copy").click()
        await expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
        assert await page.evaluate("navigator.clipboard.readText()") == url
        await dialog.get_by_role("button", name="Close").click()
        await expect(dialog).to_be_hidden()
        assert [e for e in page.console_errors if "status of 422" not in e] == []  # (the refused expiry)

    share = await sync_to_async(ShareLink.objects.get)(conversation=convo)
    assert share.up_to_id == cats_answer.pk
    assert share.expires_at is not None and share.expires_at > dt.datetime.now(dt.UTC)
    await sync_to_async(say)(convo, "user", "A later question", cats_answer)  # after the link: not on it

    async with browser_page(chromium, daphne) as page:  # signed out
        await page.goto(url)
        messages = page.locator(".shared-message")
        await expect(page.get_by_text("Cats purr.")).to_be_visible()
        text = " ".join(await messages.all_text_contents())
        for shown in ("Hello", "Hi there", "Tell me about cats", "Cats purr."):
            assert shown in text
        for hidden in ("Tell me about dogs", "Dogs bark.", "A later question"):
            assert hidden not in text
        assert "A later question" not in await page.content()
        assert page.console_errors == []


async def test_a_role_without_the_share_flag_sees_no_share_item(chromium, daphne, make_user, make_role):
    from playwright.async_api import expect

    from chat.models import Conversation

    bob = await sync_to_async(make_user)("bob", role=await sync_to_async(make_role)(can_share_conversations=False))
    await sync_to_async(Conversation.objects.create)(user=bob, title="Private notes")
    async with browser_page(chromium, daphne, bob) as page:
        await page.goto(page.base + "/")
        await page.get_by_role("button", name="Options: Private notes").click()
        await expect(page.get_by_role("menuitem", name="Rename")).to_be_visible()
        await expect(page.get_by_role("menuitem", name="Export as Markdown")).to_be_visible()
        assert await page.get_by_role("menuitem", name="Share…").count() == 0
        assert await page.locator("#sb-share-dialog").count() == 0
        assert page.console_errors == []


async def test_export_markdown_from_the_menu_downloads_the_conversation(chromium, daphne, alice, tmp_path):
    from playwright.async_api import expect

    await sync_to_async(branched)(alice)
    async with browser_page(chromium, daphne, alice) as page:
        await page.goto(page.base + "/")
        await page.get_by_role("button", name="Options: Pets talk").click()
        for name in ("Export as Markdown", "Export as text", "Export as JSON", "Export as CSV"):
            await expect(page.get_by_role("menuitem", name=name)).to_be_visible()
        async with page.expect_download() as waiting:
            await page.get_by_role("menuitem", name="Export as Markdown").click()
        download = await waiting.value
        assert download.suggested_filename.endswith(".md")
        saved = tmp_path / download.suggested_filename
        await download.save_as(str(saved))
        body = saved.read_text(encoding="utf-8")
        assert "Pets talk" in body and "Tell me about dogs" in body and "Dogs bark." in body
        assert "Cats purr." not in body  # Markdown has the branch the chat shows
        await expect(page.locator("#sb-menu")).to_be_hidden()
        assert page.url == page.base + "/"  # the download did not leave the page
        assert page.console_errors == []


async def test_a_temporary_chat_is_not_listed_in_the_sidebar(chromium, daphne, alice, chat_endpoint, upstream):
    from playwright.async_api import expect

    acme = await sync_to_async(chat_endpoint)(f"Acme {uuid.uuid4().hex[:6]}", models=("acme-small",),
                                              title_convo=True, title_timing="final", title_model="title-model")
    upstream.reply(model="acme-small", text="This chat will not be kept.")
    upstream.reply(model="title-model", text="Ephemeral Question")
    async with browser_page(chromium, daphne, alice) as page:
        await page.goto(page.base + "/")
        await expect(page.locator("#composer-input")).to_be_focused()  # chat.js has run
        await page.wait_for_selector("#selector[data-ready='1']")
        await page.click("#selector-button")
        await page.get_by_role("option", name="acme-small").click()
        await expect(page.locator("#selector-label")).to_have_text(f"{acme.name} · acme-small")
        await page.get_by_label("Temporary chat").check()
        await page.locator("#composer-input").fill("Is this kept?")
        await expect(page.locator("#send-button")).to_be_enabled()
        await page.locator("#composer-input").press("Enter")
        await page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}$"))
        conversation_id = page.url.rsplit("/", 1)[1]
        await expect(page.locator(".msg-assistant .msg-content")).to_have_text("This chat will not be kept.")
        await expect(page).to_have_title(re.compile("^Ephemeral Question"))  # the title frame came too
        assert await page.locator(f"#sb-list .sb-item[data-id='{conversation_id}']").count() == 0
        await expect(page.locator("#sb-list .sb-link")).to_have_count(0)
        answer = await page.request.get(f"{page.base}/api/conversations/{conversation_id}")
        assert answer.ok and (await answer.json())["conversation"]["temporary"] is True
        await page.reload()
        await expect(page.locator("#composer-input")).to_be_visible()
        assert await page.locator(f"#sb-list .sb-item[data-id='{conversation_id}']").count() == 0
        assert page.console_errors == []
