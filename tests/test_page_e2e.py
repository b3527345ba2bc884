"""The whole chat page end to end, in a real headless browser (Debian's chromium driven by Playwright)
against daphne and the loopback upstream: the parts together as a user meets them. Sign in through
the sign-in form, pick a model in the header and send (the upstream receives that model), the new
conversation in the sidebar with the title the model gave it, search and jump to a message, import a
ChatGPT export and find it, export Markdown, Arabic and the dark theme, phone width, and an answer
full of script payloads streamed live that runs nothing.

Screenshots of the main states (chat-light, chat-dark, chat-arabic, chat-phone) go to
docs/screenshots/ with ATRIUM_SCREENSHOTS=1; the README shows them."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from tests.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

PASSWORD = "pw-For-tests-1"
CHATGPT = Path(__file__).parent / "fixtures" / "library" / "chatgpt-conversations.json"
DARK_BACKGROUND = "rgb(20, 23, 28)"  # --bg of the dark theme, portal/static/css/atrium.css

QUESTION = "How do I read a CSV file in Python and sum one column?"
ANSWER = """Use the standard library's **csv** module: no extra package needed.

1. Open the file with `newline=""`.
2. Read rows as dictionaries with `csv.DictReader`.
3. Convert the column to numbers and add them up.

```python
import csv

with open("sales.csv", newline="") as handle:
    total = sum(float(row["amount"]) for row in csv.DictReader(handle))
print(f"Total: {total:.2f}")
```

| Approach | Needs | Good for |
|---|---|---|
| `csv` module | nothing | small files, scripts |
| `pandas.read_csv` | pandas | analysis, large files |

> Tip: pass `encoding="utf-8-sig"` when the file comes from Excel."""


@pytest.fixture
def acme(chat_endpoint):
    # A name of its own per test: the daphne process keeps the configuration it read in memory.
    return chat_endpoint(f"Acme {uuid.uuid4().hex[:6]}", models=("acme-small", "acme-large"),
                         model_display_label="Acme AI", title_convo=True, title_timing="final",
                         title_model="title-model")


@pytest.fixture
def erin(make_user, make_role):
    """A user with a verified address (mandatory verification) and a role that may use every endpoint."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    user = make_user("erin", name="Erin Example", role=make_role("STAFF"), email="erin@corp.example")
    # the tests' fast MD5 hasher is unknown to daphne, which runs with the portal's hashers
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user.save(update_fields=["password"])
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def seed_conversation(user, endpoint, title: str, exchanges: list[tuple[str, str]]):
    """A conversation of question/answer pairs in one branch; returns it and its messages."""
    from chat.models import Conversation, Message

    convo = Conversation.objects.create(user=user, title=title, endpoint=endpoint, endpoint_name=endpoint.name,
                                        model="acme-large")
    made, parent = [], None
    for question, answer in exchanges:
        parent = Message.objects.create(conversation=convo, user=user, role="user", text=question, parent=parent,
                                        content=[{"type": "text", "text": question}])
        made.append(parent)
        parent = Message.objects.create(conversation=convo, user=user, role="assistant", text=answer, parent=parent,
                                        endpoint=endpoint, model="acme-large", sender="Acme AI",
                                        prompt_tokens=38, completion_tokens=164,
                                        content=[{"type": "text", "text": answer}])
        made.append(parent)
    return convo, made


async def open_page(page, path: str):
    from playwright.async_api import expect

    await page.goto(page.base + path)
    await expect(page.locator("#composer-input")).to_be_focused()  # chat.js has run
    await page.wait_for_selector("#selector[data-ready='1']")


async def send(page, text: str):
    from playwright.async_api import expect

    await page.locator("#composer-input").fill(text)
    await expect(page.locator("#send-button")).to_be_enabled()
    await page.locator("#composer-input").press("Enter")


def answers(page):
    return page.locator(".msg-assistant .msg-content")


async def no_horizontal_scroll(page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_sign_in_pick_a_model_send_and_the_conversation_is_in_the_sidebar_with_its_title(
        chromium, daphne, erin, acme, upstream, gate, shots):
    from playwright.async_api import expect

    upstream.reply(model="acme-large", text="Pack water, a map and a warm layer.",
                   pieces=["Pack water, ", "a map ", "and a warm layer."], stall_after=1, release=gate)
    upstream.reply(model="title-model", text="Weekend Hiking Checklist")
    async with browser_page(chromium, daphne) as page:  # signed out
        await page.goto(page.base + "/")
        await expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
        await page.locator("input[name=login]").fill("erin")
        await page.locator("input[name=password]").fill(PASSWORD)
        await page.get_by_role("button", name="Sign In").click()
        await expect(page).to_have_url(page.base + "/")
        await expect(page.locator("#composer-input")).to_be_focused()
        await page.wait_for_selector("#selector[data-ready='1']")

        await page.click("#selector-button")
        await page.get_by_role("option", name="acme-large").click()
        await expect(page.locator("#selector-label")).to_have_text(f"{acme.name} · acme-large")
        await send(page, "What should I pack for a day hike?")

        await expect(answers(page)).to_have_text("Pack water,")  # streaming: the first part, the rest held
        await page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}$"))
        conversation_id = page.url.rsplit("/", 1)[1]
        current = page.locator("#sb-list [aria-current=page]")
        await expect(current).to_have_text("New Chat")
        await expect(current).to_have_attribute("href", f"/c/{conversation_id}")
        gate.set()
        await expect(answers(page)).to_have_text("Pack water, a map and a warm layer.")
        await expect(current).to_have_text("Weekend Hiking Checklist")  # the title frame
        await expect(page.locator("#sb-list .sb-group-title").first).to_have_text("Today")

        answer_request = next(r for r in upstream.completions() if r.json["model"] != "title-model")
        assert answer_request.json["model"] == "acme-large"
        assert answer_request.json["messages"][-1]["content"] == "What should I pack for a day hike?"
        await page.reload()  # the server agrees
        await expect(page.locator("#sb-list [aria-current=page]")).to_have_text("Weekend Hiking Checklist")
        await expect(page.locator("#selector-label")).to_have_text(f"{acme.name} · acme-large")
        assert page.console_errors == []


async def test_search_in_the_sidebar_jumps_to_the_message_highlighted_and_in_view(chromium, daphne, erin, acme):
    from playwright.async_api import expect

    exchanges = [(f"Question number {n}", f"Answer number {n}, a paragraph long enough to take some room.")
                 for n in range(30)]
    exchanges[2] = ("Which port does the gateway use?", "The gateway listens on port 8443 (the marmalade port).")
    convo, made = await sync_to_async(seed_conversation)(erin, acme, "Gateway notes", exchanges)
    target = made[5]  # the third answer, far above the end of the conversation
    async with browser_page(chromium, daphne, erin) as page:
        await open_page(page, "/")
        await page.get_by_role("searchbox", name="Search conversations").fill("marmalade")
        results = page.locator("#sb-results a")
        await expect(results).to_have_count(1)
        await expect(results.first).to_contain_text("Gateway notes")
        await results.first.click()

        await page.wait_for_url(re.compile(rf"/c/{convo.pk}\?m={target.pk}$"))
        message = page.locator(f"#msg-{target.pk}")
        await expect(message).to_have_class(re.compile(r"\bis-target\b"))
        await expect(message).to_be_in_viewport()
        await expect(message).to_contain_text("the marmalade port")
        await expect(page.locator(f"#msg-{made[-1].pk}")).not_to_be_in_viewport()  # the end is further down
        await expect(page.locator("#sb-list [aria-current=page]")).to_have_text("Gateway notes")
        assert page.console_errors == []


async def test_import_a_chatgpt_export_find_it_in_the_sidebar_and_export_markdown(chromium, daphne, erin, tmp_path):
    from playwright.async_api import expect

    async with browser_page(chromium, daphne, erin) as page:
        await page.goto(page.base + "/")
        await page.locator(".user-menu summary").click()
        await page.get_by_role("link", name="Settings").click()
        await page.get_by_role("navigation", name="Settings").get_by_role("link", name="Data").click()
        await page.get_by_label("Export file").set_input_files(str(CHATGPT))
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Import").click()
        await expect(page.get_by_text("Imported 2 conversations")).to_be_visible()

        await page.goto(page.base + "/")
        await page.get_by_role("searchbox", name="Search conversations").fill("sourdough")
        results = page.locator("#sb-results a")
        await expect(results.first).to_contain_text("Sourdough starter")
        await results.first.click()
        await page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}\?m=[0-9a-f-]{36}$"))
        await expect(page.locator(".msg-user .msg-content").first).to_have_text(
            "How often should I feed my sourdough starter?")
        await expect(page.locator("#sb-list [aria-current=page]")).to_have_text("Sourdough starter")

        await page.goto(page.base + "/settings/data/")
        await page.get_by_label("Format").select_option("md")
        async with page.expect_download() as waiting:
            await page.get_by_role("button", name="Download").click()
        download = await waiting.value
        assert download.suggested_filename.endswith(".md")
        saved = tmp_path / download.suggested_filename
        await download.save_as(str(saved))
        body = saved.read_text(encoding="utf-8")
        assert "Sourdough starter" in body and "How often should I feed my sourdough starter?" in body
        assert "日本語の質問" in body
        assert page.console_errors == []


async def test_light_then_dark_theme_then_arabic_on_the_chat_page(chromium, daphne, erin, acme, shots):
    from playwright.async_api import expect

    def seed():
        seed_conversation(erin, acme, "Team lunch ideas", [("Ideas for a team lunch?", "Tacos, or a picnic.")])
        return seed_conversation(erin, acme, "Summing a CSV column", [(QUESTION, ANSWER)])[0]

    convo = await sync_to_async(seed)()
    async with browser_page(chromium, daphne, erin) as page:
        await open_page(page, f"/c/{convo.pk}")
        answer = answers(page).last
        await expect(answer.locator("table")).to_be_visible()
        await expect(answer.locator("pre code")).to_contain_text("csv.DictReader(handle)")
        await expect(page.locator("body")).not_to_have_css("background-color", DARK_BACKGROUND)
        await page.screenshot(path=str(shots / "chat-light.png"), animations="disabled")

        await page.goto(page.base + "/settings/general/")
        await page.get_by_label("Dark").check()
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Save theme").click()
        await open_page(page, f"/c/{convo.pk}")
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        await expect(page.locator("body")).to_have_css("background-color", DARK_BACKGROUND)
        await expect(answer.locator("table")).to_be_visible()
        await page.screenshot(path=str(shots / "chat-dark.png"), animations="disabled")

        await page.goto(page.base + "/settings/general/")
        await page.get_by_label("Light").check()
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Save theme").click()
        await page.get_by_label("Language").select_option("ar")
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Save language").click()
        await open_page(page, f"/c/{convo.pk}")
        await expect(page.locator("html")).to_have_attribute("dir", "rtl")
        await expect(page.locator("html")).to_have_attribute("lang", "ar")
        sidebar = await page.locator("#sidebar-panel").bounding_box()
        main = await page.locator("#app-main").bounding_box()
        assert sidebar is not None and main is not None
        assert sidebar["x"] > main["x"] and abs(sidebar["x"] + sidebar["width"] - 1280) < 2  # on the right
        # the English answer still reads left to right: list numbers on the left, the first column first
        await expect(answer.locator("table")).to_have_css("direction", "ltr")
        await expect(answer.locator("ol")).to_have_css("direction", "ltr")
        assert await no_horizontal_scroll(page)
        await page.screenshot(path=str(shots / "chat-arabic.png"), animations="disabled")
        assert page.console_errors == []


async def test_at_phone_width_the_drawer_opens_and_closes_and_the_composer_sends(
        chromium, daphne, erin, acme, upstream, shots):
    from playwright.async_api import expect

    convo, _ = await sync_to_async(seed_conversation)(erin, acme, "Summing a CSV column", [(QUESTION, ANSWER)])
    upstream.reply(model="acme-large", text="Yes: `csv.DictReader` reads the header row for you.")
    async with browser_page(chromium, daphne, erin, width=390, height=844) as page:
        await open_page(page, f"/c/{convo.pk}")
        await expect(answers(page).locator("table")).to_be_visible()
        assert await no_horizontal_scroll(page)  # the code block and the table scroll on their own
        await page.screenshot(path=str(shots / "chat-phone.png"), animations="disabled")

        toggle = page.locator("header").get_by_role("button", name="Conversations")
        link = page.locator("#sb-list").get_by_role("link", name="Summing a CSV column")
        await expect(link).to_be_hidden()
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(link).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(link).to_be_hidden()
        await toggle.click()
        await expect(link).to_be_visible()
        await page.mouse.click(380, 400)  # the backdrop, beside the drawer
        await expect(link).to_be_hidden()
        await expect(toggle).to_have_attribute("aria-expanded", "false")

        composer = page.locator("#composer-input")
        await composer.click()
        box = await composer.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        await send(page, "Does it need the header row?")
        await expect(answers(page).last).to_have_text("Yes: csv.DictReader reads the header row for you.")
        assert upstream.completions()[-1].json["model"] == "acme-large"  # the conversation's model
        assert await no_horizontal_scroll(page)
        assert page.console_errors == []


PAYLOADS = ("Careful: <script>window.__pwned = 1; alert(1)</script> and "
            "<img src=x onerror=\"window.__pwned = 2; alert(2)\"> and "
            "[click me](javascript:window.__pwned=3;alert(3)) and <a href=\"javascript:window.__pwned=4\">this</a>.")


async def test_an_answer_streamed_live_with_script_payloads_shows_them_as_text_and_runs_nothing(
        chromium, daphne, erin, acme, upstream):
    from playwright.async_api import expect

    cut = [PAYLOADS[i:i + 17] for i in range(0, len(PAYLOADS), 17)]  # the payloads arrive in pieces
    upstream.reply(model="acme-large", text=PAYLOADS, pieces=cut)
    async with browser_page(chromium, daphne, erin) as page:
        dialogs: list[str] = []

        async def dismiss(dialog):
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)
        await open_page(page, "/")
        await page.click("#selector-button")
        await page.get_by_role("option", name="acme-large").click()
        await send(page, "Show me some markup")

        answer = answers(page)
        await expect(answer).to_contain_text("this</a>.")  # the whole answer is there
        await expect(page.locator("#stop-button")).to_be_hidden()
        text = await answer.inner_text()
        assert "<script>window.__pwned = 1; alert(1)</script>" in text
        assert '<img src=x onerror="window.__pwned = 2; alert(2)">' in text
        for tag in ("script", "img", "iframe"):
            await expect(answer.locator(tag)).to_have_count(0)
        assert await answer.locator("[onerror], [onload]").count() == 0
        hrefs = await answer.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert not any(href and href.lower().startswith("javascript") for href in hrefs), hrefs
        for link in await answer.locator("a").all():
            await link.click()
        # let a late handler (an image error) have its turn, then look
        await page.evaluate("new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve)))")
        assert await page.evaluate("window.__pwned") is None
        assert dialogs == []
        await page.reload()  # and the same from history
        await expect(answers(page)).to_contain_text("<script>window.__pwned = 1; alert(1)</script>")
        await page.evaluate("new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve)))")
        assert await page.evaluate("window.__pwned") is None
        assert dialogs == []
        assert page.console_errors == []
