"""How fast a long conversation opens on the chat page: server time and time to interactive.

    python bench/page.py [--messages 2300] [--runs 20]

Seeds one user with a conversation of `--messages` messages (one branch, user and assistant in
turn; answers with Markdown: paragraphs, lists, a code block, a table, now and then math) in the
environment's database (DATABASE_URL; without it the embedded default in a temporary directory),
starts a real daphne and measures, side by side in one run:

- server time of `GET /c/<id>` (the whole HTML response over loopback HTTP), beside the floor: the
  same server answering `GET /api/health` (Django, the middleware, a session, no page);
- in headless Chromium (Debian's, as the tests drive it): time from navigation start to the page
  being interactive — every message of the branch rendered and the composer ready — for a cold
  load (a new browser context) and a reload.

Targets (issue 18): server time < 200 ms; interactive < 1 s. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ttft import percentile, setup_django  # noqa: E402

# What "interactive" means on the page: the answers rendered and the composer ready (chat/static/chat/js/).
READY = "() => document.documentElement.dataset.chatReady === '1' && performance.now()"

ANSWER = """Here is what I found about **item {n}**:

1. The first point, with `inline code` and a [link](https://example.com/{n}).
2. A second point that runs a little longer so the paragraph wraps on a normal window.

```python
def item_{n}(values: list[int]) -> int:
    return sum(v * {n} for v in values if v > 0)
```

| column | value |
|---|---|
| n | {n} |
| square | {sq} |
{math}"""


def seed(messages: int) -> tuple[str, str]:
    """(conversation id, session cookie) of a bench user owning one long conversation."""
    from accounts.models import User
    from chat.models import Conversation, Message
    from tests.chatsocket import session_cookie

    user, _ = User.objects.get_or_create(username="bench-page", defaults={"email": "bench-page@example.com"})
    convo = Conversation.objects.create(user=user, title=f"A conversation of {messages} messages", model="gpt-4o")
    parent = None
    rows = []
    for index in range(messages):
        mid = uuid.uuid4()
        if index % 2 == 0:
            text = f"Question {index // 2}: could you explain item {index // 2} in a few words, with an example?"
            role = "user"
        else:
            n = index // 2
            math = f"\nThe area is $A = \\pi r^2$ for $r = {n}$.\n" if n % 10 == 0 else ""
            text = ANSWER.format(n=n, sq=n * n, math=math)
            role = "assistant"
        rows.append(Message(id=mid, conversation=convo, user=user, parent_id=parent, role=role, text=text,
                            content=[{"type": "text", "text": text}], model="gpt-4o" if role == "assistant" else "",
                            sender="GPT-4o" if role == "assistant" else ""))
        parent = mid
    Message.objects.bulk_create(rows, batch_size=500)
    return str(convo.pk), session_cookie(user).split("=", 1)[1]


async def server_times(base: str, path: str, cookie: str, runs: int) -> list[float]:
    import httpx

    times = []
    async with httpx.AsyncClient(base_url=base, cookies={"sessionid": cookie}, timeout=30) as client:
        for attempt in range(runs + 3):
            began = time.perf_counter()
            response = await client.get(path)
            elapsed = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            if attempt >= 3:  # warm-up
                times.append(elapsed)
    return times


async def browser_times(base: str, path: str, cookie: str, runs: int) -> tuple[list[float], list[float], int]:
    from playwright.async_api import async_playwright

    from tests.browser import ARGS, CHROMIUM

    cold, reload = [], []
    size = 0
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for attempt in range(runs + 1):
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                await context.add_cookies([{"name": "sessionid", "value": cookie, "url": base}])
                page = await context.new_page()
                response = await page.goto(base + path)
                assert response is not None and response.ok, response
                size = len(await response.body())
                ready = await (await page.wait_for_function(READY, timeout=30_000)).json_value()
                await page.reload()
                again = await (await page.wait_for_function(READY, timeout=30_000)).json_value()
                if attempt >= 1:
                    cold.append(ready)
                    reload.append(again)
                await context.close()
        finally:
            await browser.close()
    return cold, reload, size


def line(label: str, samples: list[float]) -> str:
    return f"{label:42} p50 {percentile(samples, 0.5):7.1f} ms   p95 {percentile(samples, 0.95):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2300)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    from tests.daphne import Daphne, server_env

    convo, cookie = seed(args.messages)
    print(f"{connection.vendor}; one conversation of {args.messages} messages; {args.runs} runs each")
    with Daphne(server_env(LOG_LEVEL="WARNING"), name="bench-page") as daphne:
        base = f"http://127.0.0.1:{daphne.port}"
        page = asyncio.run(server_times(base, f"/c/{convo}", cookie, args.runs))
        floor = asyncio.run(server_times(base, "/api/health", cookie, args.runs))
        cold, reload, size = asyncio.run(browser_times(base, f"/c/{convo}", cookie, max(3, args.runs // 4)))
    print(line("floor: GET /api/health", floor))
    print(line(f"server: GET /c/<id> ({size / 1024:.0f} KiB of HTML)", page) + "   target < 200 ms")
    print(line("browser: interactive, new context", cold) + "   target < 1000 ms")
    print(line("browser: interactive, reload", reload))


if __name__ == "__main__":
    main()
