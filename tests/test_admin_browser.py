"""The admin in a real headless browser (Debian's chromium driven by Playwright): every page of the
tour fits a 1,400 px window without scrolling sideways. A screenshot of each page is written to
the test's temporary folder (its path is printed; `pytest -s` shows it)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from tests.browser import ARGS, require_chromium
from tests.chatsocket import session_cookie
from tests.daphne import Daphne

WIDTH = 1400

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


@pytest.fixture
def chromium():
    return require_chromium()


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker):
    with Daphne(name="daphne-browser") as server:
        yield server


@pytest.fixture
def tour(admin_user, make_user, make_role, make_endpoint):
    """A portal with the things an admin looks at: endpoints with many models, usage, roles."""
    from billing.services import record_usage
    from chat.models import Conversation, Message
    from endpoints.adapters.types import Usage
    from endpoints.models import ModelSpec, UpstreamFailure

    rates = {"prompt_rate": Decimal("2.5"), "completion_rate": Decimal("10"), "context_tokens": 128000,
             "cache_read_rate": Decimal("1.25"), "cache_write_rate": Decimal("3.75")}
    endpoint = make_endpoint("OpenRouter with a long name for the selector", rates=rates,
                             models=[f"vendor/model-with-a-long-name-{i}" for i in range(8)],
                             headers={"X-Title": "Atrium"}, add_params={"web_search": True})
    role = make_role("ENGINEERING", label="Engineering", balance_enabled=True, start_balance=Decimal(1000))
    user = make_user("alice", role=role)
    for i in range(6):
        record_usage(user=user, endpoint=endpoint, model=f"vendor/model-with-a-long-name-{i % 3}", context="message",
                     usage=Usage.from_openai(prompt_tokens=1200 * (i + 1), completion_tokens=300))
    UpstreamFailure.objects.create(endpoint=endpoint, model="vendor/model-with-a-long-name-0", kind="rate_limit",
                                   status=429, message="OpenRouter is rate limiting requests; retry in 20 s. " * 3)
    ModelSpec.objects.create(name="fast", label="Fast", endpoint=endpoint, model="vendor/model-with-a-long-name-0")
    convo = Conversation.objects.create(user=user, title="Quarterly plan", endpoint=endpoint, model="m")
    Message.objects.create(conversation=convo, user=user, role="user", text="hi")
    return {"endpoint": endpoint, "role": role, "user": user, "conversation": convo}


async def test_admin_pages_fit_a_1400_px_window(chromium, daphne, tour, admin_user, tmp_path):
    # Playwright's async API: its sync API keeps an event loop running in the test's thread, where
    # Django's database calls then refuse to run.
    from asgiref.sync import sync_to_async
    from playwright.async_api import async_playwright

    cookie = (await sync_to_async(session_cookie)(admin_user)).split("=", 1)[1]
    pages = {
        "dashboard": reverse("admin:index"),
        "endpoints": reverse("admin:endpoints_endpoint_changelist"),
        "endpoint": reverse("admin:endpoints_endpoint_change", args=[tour["endpoint"].pk]),
        "endpoint-add": reverse("admin:endpoints_endpoint_add"),
        "catalogue": reverse("admin:endpoints_endpoint_catalogue"),
        "models": reverse("admin:endpoints_endpointmodel_changelist"),
        "role": reverse("admin:accounts_role_change", args=[tour["role"].pk]),
        "user": reverse("admin:accounts_user_change", args=[tour["user"].pk]),
        "conversation": reverse("admin:chat_conversation_change", args=[tour["conversation"].pk]),
        "transactions": reverse("admin:billing_transaction_changelist"),
        "usage-report": reverse("admin:billing_transaction_report") + "?group_by=model",
        "balances": reverse("admin:billing_balance_changelist"),
    }
    base = f"http://127.0.0.1:{daphne.port}"
    too_wide = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": WIDTH, "height": 900})
            await context.add_cookies([{"name": "sessionid", "value": cookie, "url": base}])
            page = await context.new_page()
            for name, path in pages.items():
                response = await page.goto(base + path)
                assert response is not None and response.status == 200, (name, path)
                assert "/admin/login/" not in page.url, name
                await page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
                width = await page.evaluate("document.documentElement.scrollWidth")
                if width > WIDTH:
                    too_wide[name] = width
                # the models-and-rates inline shows every column, not a box to scroll sideways
                inline = await page.evaluate(
                    "(() => { const t = document.querySelector('#models-group .tabular');"
                    " return t ? [t.scrollWidth, t.clientWidth] : null })()")
                if inline and inline[0] > inline[1]:
                    too_wide[f"{name} (models inline)"] = inline[0]
        finally:
            await browser.close()
            print(f"\nadmin screenshots: {tmp_path}")

    assert too_wide == {}, f"pages wider than {WIDTH} px: {too_wide} (screenshots in {tmp_path})"
    assert len(list(tmp_path.glob("*.png"))) == len(pages)
