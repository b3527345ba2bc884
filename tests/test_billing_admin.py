"""Billing in the admin: balances and adjustments, the read-only ledger, usage reports and CSV."""
from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections import defaultdict
from decimal import Decimal

import pytest

from billing.models import Balance, Transaction
from billing.services import record_usage
from endpoints.adapters.types import Usage

D = Decimal
DAY0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def alice(make_user, make_role):
    return make_user("alice", role=make_role("METERED", balance_enabled=True, start_balance=D(1000)))


def test_the_balance_list_shows_user_role_credits_and_display_currency(admin_client, alice):
    response = admin_client.get("/admin/billing/balance/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "alice" in page and "METERED" in page and "1,000" in page and "$0.001 USD" in page


def test_balances_are_never_added_edited_or_deleted_in_the_admin(admin_client, alice):
    balance = Balance.objects.get(user=alice)
    assert admin_client.get("/admin/billing/balance/add/").status_code == 403
    assert admin_client.post(f"/admin/billing/balance/{balance.pk}/delete/", {"post": "yes"}).status_code == 403
    page = admin_client.get(f"/admin/billing/balance/{balance.pk}/change/")
    assert page.status_code == 200 and "Adjust…" in page.content.decode()  # view only, with the adjust link
    assert admin_client.post(f"/admin/billing/balance/{balance.pk}/change/", {}).status_code == 403


def test_saving_a_balance_row_directly_is_refused(alice):
    from django.core.exceptions import ValidationError

    balance = Balance.objects.get(user=alice)
    balance.credits = D(10**9)
    with pytest.raises(ValidationError, match="only through billing.ledger.post"):
        balance.save()


def test_only_admins_allowed_to_change_balances_may_adjust(client, make_user, alice):
    from django.contrib.auth.models import Permission

    auditor = make_user("auditor", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_balance"))
    client.force_login(auditor)
    balance = Balance.objects.get(user=alice)
    assert client.get("/admin/billing/balance/").status_code == 200
    assert client.get(f"/admin/billing/balance/adjust/?ids={balance.pk}").status_code == 403
    assert client.post(f"/admin/billing/balance/adjust/?ids={balance.pk}",
                       {"credits": "5", "reason": "x"}).status_code == 403


def test_an_admin_adjusts_a_balance_with_a_reason(admin_client, admin_user, alice):
    balance = Balance.objects.get(user=alice)
    url = f"/admin/billing/balance/adjust/?ids={balance.pk}"
    assert "Adjust 1 balance" in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"credits": "-250.5", "reason": "refund of a test run"})
    assert response.status_code == 302
    row = Transaction.objects.get(user=alice, context="adjustment")
    assert (row.credits, row.reason, row.created_by) == (D("-250.5"), "refund of a test run", admin_user)
    assert Balance.objects.get(user=alice).credits == D("749.5")


@pytest.mark.parametrize("data, error", [
    ({"credits": "0", "reason": "x"}, "non-zero"),
    ({"credits": "10", "reason": ""}, "This field is required"),
    ({"credits": "ten", "reason": "x"}, "Enter a number"),
])
def test_a_bad_adjustment_is_shown_back_with_a_clear_error(admin_client, alice, data, error):
    balance = Balance.objects.get(user=alice)
    response = admin_client.post(f"/admin/billing/balance/adjust/?ids={balance.pk}", data)
    assert response.status_code == 200 and error in response.content.decode()
    assert not Transaction.objects.filter(user=alice, context="adjustment").exists()


def test_the_adjust_action_adjusts_every_selected_balance(admin_client, alice, make_user):
    bob = make_user("bob")
    ids = list(Balance.objects.filter(user__in=[alice, bob]).values_list("pk", flat=True))
    response = admin_client.post("/admin/billing/balance/", {"action": "adjust_selected", "_selected_action": ids})
    assert response.status_code == 302 and "/admin/billing/balance/adjust/?ids=" in response["Location"]
    admin_client.post(response["Location"], {"credits": "100", "reason": "bonus"})
    assert Transaction.objects.filter(context="adjustment", reason="bonus").count() == 2


def test_the_ledger_is_read_only_in_the_admin(admin_client, alice):
    row = Transaction.objects.get(user=alice)
    assert admin_client.get("/admin/billing/transaction/").status_code == 200
    assert admin_client.get(f"/admin/billing/transaction/{row.pk}/change/").status_code == 200  # view only
    assert admin_client.post(f"/admin/billing/transaction/{row.pk}/change/", {"credits": "5"}).status_code == 403
    assert admin_client.post(f"/admin/billing/transaction/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/billing/transaction/add/").status_code == 403
    assert Transaction.objects.get(pk=row.pk).credits == D(1000)


def test_the_ledger_list_never_counts_the_whole_table(admin_client, alice, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/billing/transaction/?token_type=adjustment")
    assert response.status_code == 200 and "alice" in response.content.decode()
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts


def test_people_who_are_not_staff_cannot_see_billing(client, alice):
    client.force_login(alice)
    for url in ("/admin/billing/balance/", "/admin/billing/transaction/report/", "/admin/billing/balance/adjust/"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- usage reports ---------------------------------------------------------------------------------

@pytest.fixture
def seeded(make_user, make_role, make_endpoint):
    """A few hundred calls across users, roles, endpoints, models and days; returns what was billed,
    tallied here in Python as the independent answer."""
    rates = {"prompt_rate": D("1.5"), "completion_rate": D("6"), "context_tokens": 8000, "cache_read_rate": D("0.25")}
    endpoints = [make_endpoint("alpha", models=("a-1", "a-2"), rates=rates),
                 make_endpoint("beta", models=("b-1",), rates={**rates, "prompt_rate": D("0.3")})]
    roles = [make_role("SALES"), make_role("ENG")]
    users = [make_user(f"u{i}", role=roles[i % 2]) for i in range(5)]
    prompt_rate = {"alpha": D("1.5"), "beta": D("0.3")}
    expected = {g: defaultdict(lambda: defaultdict(Decimal)) for g in ("user", "role", "endpoint", "model", "day")}
    rng = random.Random(4)
    for i in range(300):
        user, endpoint = rng.choice(users), rng.choice(endpoints)
        model = rng.choice(["a-1", "a-2"]) if endpoint.name == "alpha" else "b-1"
        prompt, cached, completion = rng.randint(0, 900), rng.randint(0, 300), rng.randint(0, 400)
        day = DAY0 + dt.timedelta(days=i % 4, minutes=i)
        record_usage(user=user, endpoint=endpoint, model=model, context="message", now=day,
                     usage=Usage.from_openai(prompt_tokens=prompt + cached, completion_tokens=completion,
                                             cached_tokens=cached))
        cost = prompt * prompt_rate[endpoint.name] + cached * D("0.25") + completion * D(6)
        for group, key in (("user", user.username), ("role", user.role.name), ("endpoint", endpoint.name),
                           ("model", model), ("day", day.date().isoformat())):
            tally = expected[group][key]
            tally["prompt"] += prompt
            tally["cache_read"] += cached
            tally["completion"] += completion
            tally["credits"] += cost
    return expected


def read_csv(response) -> dict[str, dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    first = next(iter(rows[0]))
    return {row[first].split(" (")[0]: row for row in rows}


@pytest.mark.parametrize("group_by", ["user", "role", "endpoint", "model", "day"])
def test_the_usage_report_and_its_csv_match_independent_sums(admin_client, seeded, group_by):
    page = admin_client.get("/admin/billing/transaction/report/", {"group_by": group_by})
    assert page.status_code == 200
    rows = {row.label.split(" (")[0]: row.usage for row in page.context["rows"]}
    expected = seeded[group_by]
    assert set(rows) == set(expected)
    for key, tally in expected.items():
        usage = rows[key]
        assert (usage.prompt_tokens, usage.cache_read_tokens, usage.completion_tokens, usage.credits) == (
            tally["prompt"], tally["cache_read"], tally["completion"], tally["credits"],
        ), key

    exported = admin_client.get("/admin/billing/transaction/report/", {"group_by": group_by, "format": "csv"})
    assert exported["Content-Type"].startswith("text/csv")
    assert f"usage-by-{group_by}" in exported["Content-Disposition"]
    table = read_csv(exported)
    assert set(table) == set(expected) | {"TOTAL"}
    for key, tally in expected.items():
        row = table[key]
        assert (int(row["prompt_tokens"]), int(row["cache_read_tokens"]), int(row["completion_tokens"]),
                D(row["credits"]), D(row["cost_USD"])) == (
            tally["prompt"], tally["cache_read"], tally["completion"], tally["credits"],
            tally["credits"] / D(1_000_000),
        ), key
    assert D(table["TOTAL"]["credits"]) == sum(t["credits"] for t in expected.values())


def test_the_report_covers_the_chosen_days_only(admin_client, seeded):
    page = admin_client.get("/admin/billing/transaction/report/",
                            {"group_by": "day", "start": "2026-03-02", "end": "2026-03-03"})
    assert [row.label for row in page.context["rows"]] == ["2026-03-02", "2026-03-03"]
    assert page.context["totals"].credits == seeded["day"]["2026-03-02"]["credits"] + seeded["day"]["2026-03-03"]["credits"]


def test_the_report_leaves_refills_and_adjustments_out(admin_client, alice):
    page = admin_client.get("/admin/billing/transaction/report/")  # default: by user, all time
    assert page.context["rows"] == [] and "No usage in this period" in page.content.decode()


def test_a_reversed_date_range_is_explained(admin_client):
    page = admin_client.get("/admin/billing/transaction/report/",
                            {"group_by": "day", "start": "2026-03-05", "end": "2026-03-01"})
    assert page.status_code == 200 and "on or before the last day" in page.content.decode()


def test_the_transaction_list_links_to_the_report(admin_client):
    assert "/admin/billing/transaction/report/" in admin_client.get("/admin/billing/transaction/").content.decode()
