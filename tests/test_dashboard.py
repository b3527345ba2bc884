"""The admin's landing page: its figures match the ledger, tallied independently."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from billing.services import adjust_balance, record_usage
from endpoints.adapters.types import Usage
from endpoints.models import UpstreamFailure
from tests.test_billing_admin import DAY0, seeded  # noqa: F401  (the seeded ledger fixture)

D = Decimal
PERIOD = {"start": "2026-03-01", "end": "2026-03-04"}


def board_of(admin_client, **period):
    response = admin_client.get("/admin/", period or PERIOD)
    assert response.status_code == 200
    return response.context["board"], response.content.decode()


def test_the_dashboard_totals_and_top_lists_match_the_ledger(admin_client, seeded):  # noqa: F811
    board, html = board_of(admin_client)

    total = sum(t["credits"] for t in seeded["day"].values())
    assert board.totals.credits == total
    assert board.totals.prompt_tokens == sum(t["prompt"] for t in seeded["day"].values())
    for ranked, group in ((board.top_users, "user"), (board.top_roles, "role"), (board.top_endpoints, "endpoint"),
                          (board.top_models, "model")):
        expected = sorted(seeded[group].items(), key=lambda kv: -kv[1]["credits"])[:5]
        assert [(r.label.split(" (")[0], r.usage.credits) for r in ranked] == [(k, t["credits"]) for k, t in expected]
        assert [r.share for r in ranked] == [int(t["credits"] * 100 / total) for _, t in expected]
    assert board.totals.cost in html and "Top models" in html


def test_the_chart_has_a_bar_per_day_scaled_to_the_busiest_day(admin_client, seeded):  # noqa: F811
    board, html = board_of(admin_client, start="2026-02-28", end="2026-03-05")

    assert [bar.day.isoformat() for bar in board.bars] == [
        "2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
    by_day = {bar.day.isoformat(): bar for bar in board.bars}
    for day, tally in seeded["day"].items():
        assert by_day[day].usage.credits == tally["credits"]
    busiest = max(seeded["day"].values(), key=lambda t: t["credits"])["credits"]
    assert max(bar.height for bar in board.bars) == 156.0
    assert by_day["2026-02-28"].height == 0 and by_day["2026-03-05"].height == 0
    assert board.chart_max == f"${busiest / D(1_000_000):,.6f}".rstrip("0")
    assert html.count("<rect ") == 6


def test_a_period_leaves_other_days_out(admin_client, seeded):  # noqa: F811
    board, _ = board_of(admin_client, start="2026-03-02", end="2026-03-03")

    assert board.totals.credits == seeded["day"]["2026-03-02"]["credits"] + seeded["day"]["2026-03-03"]["credits"]


def test_balances_running_low_are_listed_lowest_first(admin_client, admin_user, make_user, make_role):
    metered = make_role("METERED", balance_enabled=True, start_balance=D(1000))
    free = make_role("FREE", balance_enabled=False, start_balance=D(1000))
    low, lower, fine, unenforced = (make_user(n, role=r) for n, r in
                                    (("low", metered), ("lower", metered), ("fine", metered), ("unenforced", free)))
    adjust_balance(user=low, credits=D(-950), reason="spent", by=admin_user)
    adjust_balance(user=lower, credits=D(-990), reason="spent", by=admin_user)
    adjust_balance(user=unenforced, credits=D(-999), reason="spent", by=admin_user)

    board, _ = board_of(admin_client)

    assert [(b.user, b.credits) for b in board.low_balances] == [("lower", "10"), ("low", "50")]


def test_endpoint_health_shows_answered_and_failed_calls_and_the_last_error(admin_client, make_user, make_endpoint):
    user = make_user("carol")
    healthy, failing = make_endpoint("Healthy"), make_endpoint("Failing")
    today = timezone.now()
    for _ in range(3):
        record_usage(user=user, endpoint=healthy, model="test-model", context="message",
                     usage=Usage.from_openai(prompt_tokens=10, completion_tokens=5))
    record_usage(user=user, endpoint=failing, model="test-model", context="message",
                 usage=Usage.from_openai(prompt_tokens=10, completion_tokens=5), now=today - dt.timedelta(hours=2))
    for minutes in (30, 10, 20):
        UpstreamFailure.objects.create(endpoint=failing, model="test-model", kind="auth", status=401,
                                       message=f"Failing rejected the API key ({minutes})",
                                       created_at=today - dt.timedelta(minutes=minutes))

    # a period of two days: the rows above are hours old, and may be yesterday's just after midnight
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    board, html = board_of(admin_client, start=yesterday.isoformat(), end=timezone.localdate().isoformat())

    health = {h.endpoint.name: h for h in board.health}
    assert [h.endpoint.name for h in board.health][0] == "Failing"  # failing endpoints first
    assert (health["Failing"].answered, health["Failing"].failures, health["Failing"].error_rate) == (1, 3, "75.0%")
    assert health["Failing"].last_error.message == "Failing rejected the API key (10)"
    assert (health["Healthy"].answered, health["Healthy"].failures, health["Healthy"].error_rate) == (3, 0, "0.0%")
    assert health["Healthy"].last_success_at is not None
    assert "Failing rejected the API key (10)" in html


def test_people_without_billing_access_see_no_dashboard(client, make_user):
    staff = make_user("helpdesk", is_staff=True)
    client.force_login(staff)

    response = client.get("/admin/")

    assert response.status_code == 200 and "Usage dashboard" not in response.content.decode()
