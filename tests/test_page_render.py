"""The answer renderer (chat/static/chat/js/render.js) in headless Chromium, on the public share
page served by daphne under the site's real CSP: Markdown (tables, lists, links), highlighted code
with a working copy button, math as MathML, user messages as plain text, a streaming answer that
ends exactly as a one-shot render, and an answer full of script payloads that runs nothing."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

ANSWER = r"""## Growing tomatoes

Tomatoes need **sun** and *steady* water. See [the guide](https://example.com/tomatoes).

1. Pick a variety
2. Plant after the last frost
   - cherry tomatoes ripen first

| Variety | Days | Sun |
|:--------|-----:|:---:|
| Cherry  | 60   | full |
| Roma    | 75   | full<br>hot |

```python
def ripe(days: int) -> bool:
    return days >= 60  # the earliest
```

The yield grows like $y = a x^2$ with \(a > 0\), and in total

$$\sum_{i=1}^{n} i = \frac{n(n+1)}{2}$$

A plant costs $5 and a pot $10.

![a dot](data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7) ![a chart](https://example.com/chart.png)
"""

PAYLOADS = """Look at these:

<script>window.__pwned = 1; alert(1)</script>

<img src=x onerror="window.__pwned = 2; alert(2)">

[click me](javascript:window.__pwned=3;alert(3)) and <a href="javascript:window.__pwned=4">this</a>

<svg onload="window.__pwned = 5"><circle r="5"/></svg>

<iframe src="javascript:parent.__pwned=6" srcdoc="<script>parent.__pwned=7</script>"></iframe>

[data](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD04PC9zY3JpcHQ+) ![pic](x" onerror="window.__pwned=9)

<details open ontoggle="window.__pwned=10">toggle</details>

A formula with a link: $\\href{javascript:window.__pwned=11}{x}$
"""


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """docs/screenshots/ when ATRIUM_SCREENSHOTS=1 (the README links them), else the test's tmp dir."""
    if os.environ.get("ATRIUM_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS / name
    return tmp_path / name


@pytest.fixture
def share(make_user, make_role):
    """`share(answer, question=...)`: the path of a share link to a question and its answer."""
    from chat.models import Conversation, Message
    from chat.shares import share_create

    owner = make_user("olga", role=make_role("SHARERS", can_share_conversations=True))

    def make(answer: str, question: str = "How do I grow tomatoes?") -> str:
        conversation = Conversation.objects.create(user=owner, title="Garden plans")
        asked = Message.objects.create(conversation=conversation, user=owner, role="user", text=question)
        Message.objects.create(conversation=conversation, user=owner, role="assistant", text=answer,
                               parent=asked, model="gpt-4o")
        return f"/share/{share_create(user=owner, conversation=conversation).token}"

    return make


async def open_share(page, path: str):
    from asgiref.sync import sync_to_async

    response = await page.goto(page.base + await sync_to_async(lambda: path)())
    assert response is not None and response.status == 200
    answer = page.locator(".shared-message.assistant .shared-text")
    await answer.locator(":scope.markdown").wait_for()
    return answer


async def test_an_answer_shows_markdown_tables_code_and_math(chromium, daphne, share, tmp_path):
    from asgiref.sync import sync_to_async
    from playwright.async_api import expect

    path = await sync_to_async(share)(ANSWER)
    async with browser_page(chromium, daphne, permissions=["clipboard-read", "clipboard-write"]) as page:
        answer = await open_share(page, path)

        await expect(answer.get_by_role("heading", name="Growing tomatoes")).to_be_visible()
        await expect(answer.locator("strong")).to_have_text("sun")
        await expect(answer.locator("p").first).to_have_attribute("dir", "auto")  # an Arabic page, an English answer
        await expect(answer.locator("ol > li")).to_have_count(2)
        await expect(answer.locator("ol li ul li")).to_have_text("cherry tomatoes ripen first")
        link = answer.get_by_role("link", name="the guide")
        await expect(link).to_have_attribute("href", "https://example.com/tomatoes")
        await expect(link).to_have_attribute("target", "_blank")
        await expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")

        table = answer.locator(".table-wrap > table")
        await expect(table.locator("th")).to_have_text(["Variety", "Days", "Sun"])
        await expect(table.locator("tbody tr")).to_have_count(2)
        await expect(table.locator("tbody tr").first.locator("td")).to_have_text(["Cherry", "60", "full"])
        await expect(table.locator("td br")).to_have_count(1)  # the one tag taken from the model's text

        code = answer.locator(".code-block")
        await expect(code.locator(".code-lang")).to_have_text("python")
        await expect(code.locator("code .hljs-keyword").first).to_have_text("def")
        await expect(code.locator("code .hljs-comment")).to_have_text("# the earliest")
        copy = code.get_by_role("button", name="Copy")
        await copy.click()
        await expect(code.get_by_role("button", name="Copied")).to_be_visible()
        await expect(code.locator("[aria-live=polite]")).to_have_text("Copied")
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert copied == "def ripe(days: int) -> bool:\n    return days >= 60  # the earliest"

        # Math: MathML drawn by the browser (the CSP allows no inline styles, so no HTML output)
        await expect(answer.locator("math")).to_have_count(3)
        await expect(answer.locator(".math-block math[display=block]")).to_have_count(1)
        await expect(answer.locator("math").first.locator("msup")).to_have_count(1)
        await expect(answer.locator(".math-block mfrac")).to_have_count(1)
        await expect(answer.locator(".math-source")).to_have_count(0)
        await expect(answer.get_by_text("A plant costs $5 and a pot $10.")).to_be_visible()
        # images: data: ones show; others (which the CSP would block) become links
        await expect(answer.get_by_role("img", name="a dot")).to_have_attribute("src", re.compile("^data:image/gif;"))
        await expect(answer.get_by_role("link", name="a chart")).to_have_attribute(
            "href", "https://example.com/chart.png")

        await expect(page.locator(".shared-message.user .shared-text")).to_have_text("How do I grow tomatoes?")
        await page.screenshot(path=str(screenshot_path(tmp_path, "render-light.png")), full_page=True)
        assert page.console_errors == []


async def test_the_dark_theme_uses_the_dark_code_colours(chromium, daphne, share, tmp_path):
    from asgiref.sync import sync_to_async
    from playwright.async_api import expect

    path = await sync_to_async(share)(ANSWER)
    async with browser_page(chromium, daphne) as page:
        await page.context.add_cookies([{"name": "atrium_theme", "value": "dark", "url": page.base}])
        answer = await open_share(page, path)
        keyword = answer.locator("code .hljs-keyword").first
        await expect(keyword).to_have_css("color", "rgb(255, 123, 114)")  # GitHub dark
        await expect(answer.locator("math")).to_have_count(3)
        await page.screenshot(path=str(screenshot_path(tmp_path, "render-dark.png")), full_page=True)
    async with browser_page(chromium, daphne, color_scheme="dark") as page:  # "system" on a dark system
        answer = await open_share(page, path)
        await expect(answer.locator("code .hljs-keyword").first).to_have_css("color", "rgb(255, 123, 114)")
    async with browser_page(chromium, daphne, color_scheme="light") as page:
        answer = await open_share(page, path)
        await expect(answer.locator("code .hljs-keyword").first).to_have_css("color", "rgb(215, 58, 73)")
        assert page.console_errors == []


async def test_script_payloads_in_an_answer_are_text_and_run_nothing(chromium, daphne, share):
    from asgiref.sync import sync_to_async
    from playwright.async_api import expect

    path = await sync_to_async(share)(PAYLOADS, question='<img src=x onerror="window.__pwned=12">\nsecond line')
    async with browser_page(chromium, daphne) as page:
        dialogs = []

        async def dismiss(dialog):
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)
        answer = await open_share(page, path)
        await expect(answer.locator("math")).to_have_count(1)  # every block is rendered

        text = await answer.inner_text()
        assert "<script>window.__pwned = 1; alert(1)</script>" in text
        assert '<img src=x onerror="window.__pwned = 2; alert(2)">' in text
        assert '<svg onload="window.__pwned = 5">' in text
        for tag in ("script", "img", "svg", "iframe", "details", "object", "embed", "style"):
            await expect(answer.locator(tag)).to_have_count(0)
        assert await answer.locator("[onerror], [onload], [ontoggle], [style]").count() == 0
        hrefs = await answer.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert all(href is None or href.startswith("https:") for href in hrefs), hrefs
        for link in await answer.locator("a").all():
            await link.click()
        await answer.locator("math").click()

        question = page.locator(".shared-message.user .shared-text")
        await expect(question).to_have_text('<img src=x onerror="window.__pwned=12">\nsecond line')
        await expect(question.locator("img")).to_have_count(0)

        # let a late handler (an image error, a frame's load) have its turn, then look
        await page.evaluate("new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve)))")
        assert await page.evaluate("window.__pwned") is None
        assert dialogs == []
        assert len(page.context.pages) == 1  # no link opened anything


async def test_a_streamed_answer_ends_exactly_as_a_one_shot_render(chromium, daphne, share):
    from asgiref.sync import sync_to_async

    path = await sync_to_async(share)("Streaming test")
    streamed = ANSWER + "\n```\nunlabelled = [1, 2, 3]\nprint(unlabelled)\n```\n\n- done\n"
    async with browser_page(chromium, daphne) as page:
        await open_share(page, path)
        result = await page.evaluate(
            """async (text) => {
                const { renderMarkdown } = await import("/static/chat/js/render.js");
                const live = document.createElement("div"), once = document.createElement("div");
                document.querySelector("article").append(live, once);
                const seen = { openFence: false, firstCode: null, keptCode: false };
                const waits = [];
                for (let end = 1; end <= text.length; end += 7) {
                    const prefix = text.slice(0, end);
                    waits.push(renderMarkdown(live, prefix));    // many calls per frame: one render
                    if (end % 35 === 1) {
                        await Promise.all(waits);
                        const fence = prefix.lastIndexOf("```python");
                        if (fence > 0 && prefix.indexOf("```", fence + 3) < 0 && prefix.length > fence + 20)
                            seen.openFence ||= live.querySelector(".code-block pre code") !== null;
                        if (!seen.firstCode && prefix.includes("# the earliest\\n```"))
                            seen.firstCode = live.querySelector(".code-block");
                    }
                }
                await renderMarkdown(live, text);
                await renderMarkdown(once, text);
                seen.keptCode = seen.firstCode !== null && seen.firstCode.isConnected;
                return { same: live.innerHTML === once.innerHTML, html: once.innerHTML.length, ...seen,
                         firstCode: null, maths: once.querySelectorAll("math").length,
                         labels: [...once.querySelectorAll(".code-lang")].map(e => e.textContent) };
            }""",
            streamed,
        )
        assert result["same"]
        assert result["openFence"], "an unclosed fence renders as a code block while it streams"
        assert result["keptCode"], "a finished code block is kept, not rebuilt, while the answer grows"
        assert result["maths"] == 3
        assert result["labels"][0] == "python" and len(result["labels"]) == 2
        assert page.console_errors == []


async def test_code_stays_left_to_right_on_a_right_to_left_page(chromium, daphne, share):
    from asgiref.sync import sync_to_async
    from playwright.async_api import expect

    path = await sync_to_async(share)("مرحبا\n\n" + ANSWER)
    async with browser_page(chromium, daphne, locale="ar") as page:
        answer = await open_share(page, path)
        await expect(page.locator("html")).to_have_attribute("dir", "rtl")
        await expect(answer.locator("p").first).to_have_css("direction", "rtl")
        await expect(answer.get_by_text("Tomatoes need")).to_have_css("direction", "ltr")
        await expect(answer.locator(".code-block pre")).to_have_css("direction", "ltr")
        assert page.console_errors == []
