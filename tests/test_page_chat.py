"""The chat page's conversation pane in a real headless browser (Debian's chromium) against daphne
and the loopback upstream: send and watch the answer stream, stop, continue, regenerate, navigate
siblings, edit and resend, reload mid-answer and see it resume, fork, the keyboard (Enter,
Shift+Enter, Esc) and readable error notices.

The upstream pauses an answer where a test wants (`stall_after` with a `release` event), so a test
sees the first part on the page before it lets the rest come: no timing involved. The model
selector (another part of the page) adds the endpoint and model to each turn through the
`atrium:before-send` event; these tests do the same with a listener of their own."""
from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from endpoints.adapters.types import Usage
from tests.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

# The test's stand-in for the model selector, and a record of the page's events (the page contract).
HOOKS = """
window.__shifts = [];  // layout shifts not caused by input: [time, score, what moved]
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (!entry.hadRecentInput) {
      window.__shifts.push([entry.startTime, entry.value, entry.sources.map((s) => s.node && s.node.className)]);
    }
  }
}).observe({type: "layout-shift", buffered: true});
window.__events = [];
for (const name of ["atrium:conversation", "atrium:conversation-loaded", "atrium:turn-done"]) {
  document.addEventListener(name, (event) => window.__events.push({name, detail: event.detail}));
}
document.addEventListener("atrium:before-send", (event) => {
  window.__events.push({name: "atrium:before-send", detail: {...event.detail}});
  Object.assign(event.detail, {endpoint: "%s", model: "test-model"});
});
"""


@pytest.fixture
def acme(chat_endpoint):
    # A name of its own per test: the daphne process keeps the configuration it read in memory.
    return chat_endpoint(f"Acme {uuid.uuid4().hex[:6]}", model_display_label="Acme AI")


async def open_chat(page, endpoint, path="/"):
    await page.add_init_script(HOOKS % endpoint.name)
    await page.goto(page.base + path)
    from playwright.async_api import expect

    await expect(page.locator("#composer-input")).to_be_focused()
    return page


async def send(page, text):
    from playwright.async_api import expect

    await page.locator("#composer-input").fill(text)
    await expect(page.locator("#send-button")).to_be_enabled()
    await page.locator("#composer-input").press("Enter")


def answers(page):
    return page.locator(".msg-assistant .msg-content")


async def events(page, name):
    return [e["detail"] for e in await page.evaluate("window.__events") if e["name"] == name]


async def test_an_answer_streams_in_and_the_page_becomes_the_conversation(chromium, daphne, chatter, acme, upstream,
                                                                          gate, shots):
    from playwright.async_api import expect

    upstream.reply(text="First part. Second part.", pieces=["First ", "part. ", "Second ", "part."],
                   stall_after=2, release=gate, usage=Usage(input_tokens=12, output_tokens=4))
    async with browser_page(chromium, daphne, chatter) as page:
        await open_chat(page, acme)
        await expect(page.locator("#send-button")).to_be_disabled()  # nothing to send yet
        await expect(page.locator(".chat-empty")).to_be_visible()

        await send(page, "Hello <b>there</b>")

        await expect(page.locator(".msg-user .msg-content")).to_have_text("Hello <b>there</b>")  # text, not markup
        await expect(answers(page)).to_have_text("First part.")  # before the answer is done
        await expect(page.locator("#stop-button")).to_be_visible()
        await expect(page.locator(".msg-assistant .msg-sender")).to_have_text("Acme AI")
        await page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}$"))
        await page.screenshot(path=str(shots / "pane-streaming.png"))
        since = await page.evaluate("performance.now()")
        gate.set()

        await expect(answers(page)).to_have_text("First part. Second part.")
        await expect(page.locator("#stop-button")).to_be_hidden()
        # nothing on the page moved while the rest of the answer came
        assert [s for s in await page.evaluate("window.__shifts") if s[0] >= since] == []
        await expect(page.locator(".msg-assistant .msg-usage")).to_contain_text("12 in · 4 out")
        await expect(page.locator("#composer-input")).to_be_focused()
        conversation_id = page.url.rsplit("/", 1)[1]
        created = await events(page, "atrium:conversation")
        assert created[0] == {"id": conversation_id, "title": "New Chat", "new": True, "temporary": False}
        loaded = await events(page, "atrium:conversation-loaded")
        assert loaded[0] == {"conversation": None} and loaded[1]["conversation"]["id"] == conversation_id
        assert loaded[1]["conversation"]["endpoint"] == acme.name
        done = await events(page, "atrium:turn-done")
        assert done[0]["conversation_id"] == conversation_id
        sent = (await events(page, "atrium:before-send"))[0]
        assert sent["type"] == "send" and sent["text"] == "Hello <b>there</b>" and "conversation_id" not in sent

        # Shift+Enter adds a line; Enter sends into the same conversation, under the newest answer.
        upstream.reply(text="Second answer.")
        await page.locator("#composer-input").fill("line one")
        await page.locator("#composer-input").press("Shift+Enter")
        await page.locator("#composer-input").press_sequentially("line two")
        await expect(page.locator("#composer-input")).to_have_value("line one\nline two")
        await expect(page.locator(".msg")).to_have_count(2)
        await page.locator("#composer-input").press("Enter")
        await expect(answers(page).nth(1)).to_have_text("Second answer.")
        await expect(page.locator(".msg-user .msg-content").nth(1)).to_have_text(
            "line one\nline two", use_inner_text=True)
        second = (await events(page, "atrium:before-send"))[1]
        assert second["conversation_id"] == conversation_id and second["parent_id"]
        await page.screenshot(path=str(shots / "pane-light.png"))
        assert page.console_errors == []


async def test_stop_keeps_the_partial_answer_and_continue_goes_on_from_it(chromium, daphne, chatter, acme, upstream,
                                                                         gate):
    from playwright.async_api import expect

    upstream.reply(text="Once upon a time there", pieces=["Once ", "upon ", "a time ", "there"], stall_after=2,
                   release=gate)
    async with browser_page(chromium, daphne, chatter) as page:
        await open_chat(page, acme)
        await send(page, "Tell me a story")
        await expect(answers(page)).to_have_text("Once upon")

        await page.keyboard.press("Escape")  # Esc stops

        await expect(page.locator("#stop-button")).to_be_hidden()
        await expect(page.locator("#send-button")).to_be_visible()
        cont = page.locator('.msg-assistant [data-action="continue"]')
        await expect(cont).to_be_visible()  # a cut-off answer can be continued
        await expect(answers(page)).to_have_text("Once upon")

        upstream.reply(text=" lived a fox.")
        await cont.click()

        await expect(answers(page)).to_have_text("Once upon lived a fox.")
        await expect(page.locator(".msg-assistant")).to_have_count(1)  # the same answer, longer
        await expect(cont).to_be_hidden()
        assert page.console_errors == []


async def test_regenerate_edit_and_navigate_siblings(chromium, daphne, chatter, acme, upstream):
    from playwright.async_api import expect

    async with browser_page(chromium, daphne, chatter) as page:
        await open_chat(page, acme)
        upstream.reply(text="Answer one.", reasoning="Let me think it over.")
        await send(page, "Question")
        await expect(answers(page)).to_have_text("Answer one.")
        reasoning = page.locator(".msg-assistant .msg-reasoning")
        await expect(reasoning).to_be_visible()
        await expect(reasoning).not_to_have_attribute("open", "")  # collapsed
        await expect(reasoning.locator(".msg-reasoning-text")).to_be_hidden()
        await reasoning.locator("summary").click()
        await expect(reasoning.locator(".msg-reasoning-text")).to_have_text("Let me think it over.")
        await expect(page.locator("#stop-button")).to_be_hidden()

        upstream.reply(text="Answer two.")
        await page.locator('.msg-assistant [data-action="regenerate"]').click()
        await expect(answers(page)).to_have_text("Answer two.")
        counter = page.locator(".msg-assistant .msg-sibling-count")
        await expect(counter).to_have_text("2 / 2")
        await expect(page.locator("#stop-button")).to_be_hidden()

        await page.locator('.msg-assistant [data-action="prev"]').click()
        await expect(answers(page)).to_have_text("Answer one.")
        await expect(counter).to_have_text("1 / 2")
        await page.locator('.msg-assistant [data-action="next"]').click()
        await expect(answers(page)).to_have_text("Answer two.")

        # Edit and resend: a new version of the question, with its own answer.
        upstream.reply(text="Answer to the edit.")
        await page.locator('.msg-user [data-action="edit"]').click()
        editor = page.locator(".msg-editor textarea")
        await expect(editor).to_be_focused()
        await expect(editor).to_have_value("Question")
        await editor.fill("Question, edited")
        await editor.press("Enter")

        await expect(page.locator(".msg-user .msg-content")).to_have_text("Question, edited")
        await expect(answers(page)).to_have_text("Answer to the edit.")
        await expect(page.locator(".msg-user .msg-sibling-count")).to_have_text("2 / 2")
        await expect(page.locator(".msg-assistant .msg-siblings")).to_be_hidden()

        # Back to the first version: its branch down to its newest answer.
        await page.locator('.msg-user [data-action="prev"]').click()
        await expect(page.locator(".msg-user .msg-content")).to_have_text("Question")
        await expect(answers(page)).to_have_text("Answer two.")
        await expect(counter).to_have_text("2 / 2")

        # A reload shows the branch with the newest message.
        await page.reload()
        await expect(page.locator(".msg-user .msg-content")).to_have_text("Question, edited")
        await expect(answers(page)).to_have_text("Answer to the edit.")
        assert page.console_errors == []


async def test_a_reload_mid_answer_shows_the_answer_so_far_and_keeps_streaming(chromium, daphne, chatter, acme,
                                                                              upstream, gate):
    from playwright.async_api import expect

    upstream.reply(text="Alpha beta gamma delta.", pieces=["Alpha ", "beta ", "gamma ", "delta."], stall_after=2,
                   release=gate)
    async with browser_page(chromium, daphne, chatter) as page:
        await open_chat(page, acme)
        await send(page, "Count in Greek")
        await expect(answers(page)).to_have_text("Alpha beta")
        await page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}$"))

        await page.reload()

        await expect(answers(page)).to_have_text("Alpha beta")
        await expect(page.locator("#stop-button")).to_be_visible()
        gate.set()
        await expect(answers(page)).to_have_text("Alpha beta gamma delta.")
        await expect(page.locator("#stop-button")).to_be_hidden()
        await expect(page.locator(".msg-assistant")).to_have_count(1)
        assert page.console_errors == []


async def test_fork_opens_a_new_conversation_with_the_branch(chromium, daphne, chatter, acme, upstream):
    from playwright.async_api import expect

    from chat.models import Conversation

    upstream.reply(text="Forked answer.")
    async with browser_page(chromium, daphne, chatter, permissions=["clipboard-read", "clipboard-write"]) as page:
        await open_chat(page, acme)
        await send(page, "Fork me")
        await expect(answers(page)).to_have_text("Forked answer.")
        copy = page.locator('.msg-assistant [data-action="copy"]')
        await copy.click()
        await expect(copy).to_have_text("Copied")
        assert await page.evaluate("navigator.clipboard.readText()") == "Forked answer."
        await page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}$"))
        first = page.url

        await page.locator('.msg-assistant [data-action="fork"]').click()

        await page.wait_for_url(lambda url: url != first and re.search(r"/c/[0-9a-f-]{36}$", url) is not None)
        await expect(answers(page)).to_have_text("Forked answer.")
        await expect(page.locator(".msg-user .msg-content")).to_have_text("Fork me")
        assert await sync_to_async(Conversation.objects.filter(user=chatter).count)() == 2
        assert page.console_errors == []


async def test_m_opens_a_conversation_at_that_message(chromium, daphne, chatter, acme):
    from playwright.async_api import expect

    from chat.models import Conversation, Message

    def make():
        convo = Conversation.objects.create(user=chatter, title="Trips", endpoint=acme, model="test-model")
        question = Message.objects.create(conversation=convo, user=chatter, role="user", text="Where?")
        older = Message.objects.create(conversation=convo, user=chatter, role="assistant", parent=question,
                                       text="Lisbon.", endpoint=acme, model="test-model")
        Message.objects.create(conversation=convo, user=chatter, role="assistant", parent=question, text="Porto.",
                               endpoint=acme, model="test-model")
        return convo, older

    convo, older = await sync_to_async(make)()
    async with browser_page(chromium, daphne, chatter) as page:
        await open_chat(page, acme, f"/c/{convo.pk}")
        await expect(answers(page)).to_have_text("Porto.")  # the newest branch

        await page.goto(f"{page.base}/c/{convo.pk}?m={older.pk}")

        await expect(answers(page)).to_have_text("Lisbon.")
        await expect(page.locator(f"#msg-{older.pk}")).to_have_class(re.compile("is-target"))
        await expect(page.locator(".msg-assistant .msg-sibling-count")).to_have_text("1 / 2")
        assert page.console_errors == []


async def test_an_empty_balance_is_a_notice_saying_what_to_do_and_the_message_is_kept(
    chromium, daphne, make_role, make_user, acme, upstream
):
    from playwright.async_api import expect

    role = await sync_to_async(make_role)("BROKE", balance_enabled=True, start_balance=Decimal(0))
    user = await sync_to_async(make_user)("broke", role=role)
    async with browser_page(chromium, daphne, user) as page:
        await open_chat(page, acme)
        await send(page, "Is anyone there?")

        notice = page.locator("#chat-notice")
        await expect(notice).to_be_visible()
        await expect(notice).to_contain_text("Ask your administrator for more credits.")
        await expect(page.locator("#composer-input")).to_have_value("Is anyone there?")  # nothing lost
        await expect(page.locator("#send-button")).to_be_enabled()
        assert upstream.completions() == []


async def test_an_upstream_failure_is_a_notice_with_the_retry_time(chromium, daphne, chatter, acme, upstream):
    from playwright.async_api import expect

    upstream.reply(status=429, retry_after="7")
    async with browser_page(chromium, daphne, chatter) as page:
        await open_chat(page, acme)
        await send(page, "Hello?")

        notice = page.locator("#chat-notice")
        await expect(notice).to_contain_text("try again in 7 seconds")
        await expect(page.locator("#stop-button")).to_be_hidden()
        await expect(page.locator(".msg-assistant .msg-error")).to_be_visible()


async def test_a_lost_connection_says_so_reconnects_and_the_answer_goes_on_without_repeats(
    chromium, daphne, chatter, acme, upstream, gate
):
    from playwright.async_api import expect

    upstream.reply(text="One two three four.", pieces=["One ", "two ", "three ", "four."], stall_after=2,
                   release=gate)
    sockets = []

    async def through(ws):  # the page's websocket, passed through to daphne; the test can cut it
        ws.connect_to_server()
        sockets.append(ws)

    async with browser_page(chromium, daphne, chatter) as page:
        await page.route_web_socket(re.compile(r"/ws/chat/$"), through)
        await open_chat(page, acme)
        await send(page, "Count")
        await expect(answers(page)).to_have_text("One two")

        await sockets[0].close(code=1012, reason="service restart")

        notice = page.locator("#chat-connection")
        await expect(notice).to_contain_text("reconnecting")
        await expect(notice).to_be_hidden()  # back (the next try is a second later)
        assert len(sockets) == 2
        gate.set()
        await expect(answers(page)).to_have_text("One two three four.")  # nothing twice, nothing missed
        await expect(page.locator("#stop-button")).to_be_hidden()
        assert page.console_errors == []


async def test_a_missing_own_key_is_a_notice_with_a_link_to_the_settings(chromium, daphne, chatter, chat_endpoint):
    from playwright.async_api import expect

    own_key = await sync_to_async(chat_endpoint)(f"Keyed {uuid.uuid4().hex[:6]}", api_key="user_provided")
    async with browser_page(chromium, daphne, chatter) as page:
        await open_chat(page, own_key)
        await send(page, "Hi")

        notice = page.locator("#chat-notice")
        await expect(notice).to_contain_text("Add your key for")
        await expect(notice.get_by_role("link", name="Open settings")).to_have_attribute("href", "/settings/")
        await expect(page.locator("#stop-button")).to_be_hidden()


async def test_the_balance_badge_follows_the_answers_cost(chromium, daphne, make_role, make_user, chat_endpoint,
                                                          upstream):
    from playwright.async_api import expect

    role = await sync_to_async(make_role)("PAYING", balance_enabled=True, start_balance=Decimal(3_000_000))
    user = await sync_to_async(make_user)("payer", role=role)
    rates = {"prompt_rate": Decimal(10_000), "completion_rate": Decimal(10_000)}
    priced = await sync_to_async(chat_endpoint)(f"Priced {uuid.uuid4().hex[:6]}", rates=rates)
    upstream.reply(text="That costs.", usage=Usage(input_tokens=50, output_tokens=50))
    async with browser_page(chromium, daphne, user) as page:
        await open_chat(page, priced)
        badge = page.locator("#balance-badge [data-balance]")
        await expect(badge).to_have_text("$3.00")

        await send(page, "Spend")

        await expect(answers(page)).to_have_text("That costs.")
        await expect(badge).to_have_text("$2.00")  # 100 tokens × 10,000 credits = 1,000,000 credits = $1
        await expect(page.locator(".msg-assistant .msg-usage")).to_contain_text("$1.00")
