"""Chat page benchmark: a conversation of 2,300 messages (one branch, every answer billed) opened at
`/c/<id>`. Prints figures; asserts nothing.

    python bench/page.py [--messages 2300] [--runs 30] [--no-browser]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atrium python bench/page.py

Seeds the conversation in a throw-away database (`<name>_bench_page` next to DATABASE_URL's,
created and dropped here), then times the view through Django's test client (server time: the
query path, the tree, the JSON, the template; target < 200 ms) and, unless `--no-browser`, the page
in headless chromium against daphne: from navigation start to the pane's `atrium:chat-ready`
performance mark (the branch drawn, the composer focused; target < 1 s). Beside the server time, in
the same run: the floor (`GET /api/health`, the same stack signed in, no page) and a new chat (`GET /`:
the shell, sidebar and selector without a conversation).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

import portal.asgi  # noqa: E402, F401  (as a server starts: the start-up heap frozen, see freeze_start_up_heap)


def seed(messages: int):  # type: ignore[no-untyped-def]
    from accounts.models import User
    from billing.services import record_usage
    from chat.models import Conversation, Message
    from endpoints.adapters.types import Usage
    from endpoints.models import Endpoint, EndpointModel

    user = User.objects.create(username="bench-reader", name="Bench Reader")
    endpoint = Endpoint.objects.create(name="Bench", base_url="http://127.0.0.1:9/v1", api_key="sk-bench")
    EndpointModel.objects.create(endpoint=endpoint, name="bench-model", prompt_rate=Decimal(1),
                                 completion_rate=Decimal(2))
    conversation = Conversation.objects.create(user=user, title="A long one", endpoint=endpoint, model="bench-model")
    paragraph = ("A paragraph of an answer with **some Markdown**, a list:\n\n- one\n- two\n\n"
                 "and `inline code`, long enough to look like a real reply. ") * 3
    parent = None
    for i in range(messages):
        role = "user" if i % 2 == 0 else "assistant"
        parent = Message.objects.create(conversation=conversation, user=user, parent=parent, role=role,
                                        text=f"Question {i}?" if role == "user" else f"Answer {i}. {paragraph}",
                                        endpoint=endpoint if role == "assistant" else None, model="bench-model")
        if role == "assistant":
            record_usage(user=user, endpoint=endpoint, model="bench-model", context="message", message=parent,
                         conversation=conversation, usage=Usage.from_openai(prompt_tokens=50 + i, completion_tokens=80))
    return user, conversation


def server_time(user, path: str, runs: int):  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client()
    client.force_login(user)
    samples, cpu = [], []
    for _ in range(runs + 2):
        start, start_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        assert response.status_code == 200, response.status_code
    return samples[2:], cpu[2:], len(response.content)  # type: ignore[return-value]


async def browser_time(user, conversation, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    from asgiref.sync import sync_to_async
    from django.db import connections

    from tests.browser import browser_missing, browser_page
    from tests.daphne import Daphne

    missing = browser_missing()
    if missing:
        print(f"browser: skipped ({missing})")
        return []
    samples = []
    with Daphne(name="daphne-bench-page") as daphne:
        async with browser_page("/usr/bin/chromium", daphne, user) as page:
            for _ in range(runs + 1):
                await page.goto(f"{page.base}/c/{conversation.pk}")
                await page.wait_for_function("performance.getEntriesByName('atrium:chat-ready').length > 0")
                samples.append(await page.evaluate("performance.getEntriesByName('atrium:chat-ready')[0].startTime"))
    await sync_to_async(connections.close_all)()  # (the sign-in's thread; the database is dropped next)
    return samples[1:]


def line(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{name}: median {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms ({len(samples)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2300)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    test = connection.settings_dict.setdefault("TEST", {})  # (not the test suite's database)
    if connection.vendor == "sqlite":
        test["NAME"] = str(Path(old_name).with_name("bench_page.sqlite3"))
    else:
        test["NAME"] = f"{old_name}_bench_page"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        user, conversation = seed(args.messages)
        print(f"{args.messages} messages on one branch, {connection.vendor}")
        # the floor: the same stack answering a signed-in request with no page (the session, the
        # middleware, the user), then the page without a conversation (shell, sidebar, selector)
        floor, _, _ = server_time(user, "/api/health", args.runs)
        print(line("floor (GET /api/health, test client)", floor))
        empty, _, _ = server_time(user, "/", args.runs)
        print(line("a new chat (GET /, test client)", empty))
        samples, cpu, size = server_time(user, f"/c/{conversation.pk}", args.runs)
        print(line("server time (GET /c/<id>, test client)", samples) + f", {size / 1024:.0f} KiB")
        print(line("  of it CPU time of this process (the figure a busy machine does not inflate)", cpu))
        if not args.no_browser:
            browser = asyncio.run(browser_time(user, conversation, min(args.runs, 10)))
            if browser:
                print(line("browser: navigation start → pane ready", browser))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
