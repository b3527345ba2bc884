"""The ledger: start balance, usage records, the balance check, auto-refill, adjustments, selectors."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum

from billing import selectors
from billing.models import Balance, Hold, Transaction
from billing.services import (
    BillingError,
    InsufficientBalance,
    add_interval,
    adjust_balance,
    check_balance,
    ensure_balance,
    record_usage,
    refill_due_balances,
    refill_if_due,
)
from endpoints.adapters.types import Usage

D = Decimal
T0 = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
RATES = {"prompt_rate": D("2"), "completion_rate": D("8"), "context_tokens": 8192, "cache_read_rate": D("0.5")}


@pytest.fixture
def endpoint(make_endpoint):
    return make_endpoint("priced", models=("m1",), rates=RATES)


@pytest.fixture
def metered(make_role):
    return make_role("METERED", balance_enabled=True, start_balance=D(10_000), auto_refill_enabled=True, refill_amount=D(5_000),
                     refill_interval_value=1, refill_interval_unit="days")


@pytest.fixture
def user(make_user, metered):
    return make_user("alice", role=metered)


def ledger_sum(user) -> Decimal:
    return Transaction.objects.filter(user=user).aggregate(s=Sum("credits"))["s"] or D(0)


def credits(user) -> Decimal:
    return Balance.objects.get(user=user).credits


# --- start balance ---------------------------------------------------------------------------------

def test_a_new_user_gets_the_roles_start_balance_recorded_in_the_ledger(user):
    assert credits(user) == D(10_000) == ledger_sum(user)
    start = Transaction.objects.get(user=user)
    assert (start.token_type, start.context, start.credits, start.role.name) == ("adjustment", "start", D(10_000),
                                                                                 "METERED")


def test_ensure_balance_is_idempotent(user):
    assert ensure_balance(user=user).pk == ensure_balance(user=user).pk
    assert Transaction.objects.filter(user=user).count() == 1 and credits(user) == D(10_000)


def test_a_user_without_a_balance_gets_one_on_first_login(client, user):
    Balance.objects.filter(user=user).delete()  # e.g. created by an import that skipped signals
    client.force_login(user)
    assert Balance.objects.filter(user=user).exists()


# --- recording usage -------------------------------------------------------------------------------

def test_usage_is_recorded_as_one_row_per_token_type_and_moves_the_balance(user, endpoint):
    usage = Usage.from_openai(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    rows = record_usage(user=user, endpoint=endpoint, model="m1", usage=usage, context="message")
    assert {(r.token_type, r.tokens, r.rate, r.credits) for r in rows} == {
        ("prompt", 600, D(2), D(-1200)),
        ("cache_read", 400, D("0.5"), D(-200)),
        ("completion", 100, D(8), D(-800)),
    }
    assert all(r.endpoint_name == "priced" and r.model == "m1" and r.role.name == "METERED" for r in rows)
    assert credits(user) == D(10_000 - 2200) == ledger_sum(user)


def test_usage_rows_link_the_conversation_and_message(user, endpoint):
    from chat.models import Conversation, Message

    convo = Conversation.objects.create(user=user)
    message = Message.objects.create(conversation=convo, user=user, role="assistant")
    rows = record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=1, output_tokens=1),
                        context="message", message=message)
    assert {(r.conversation_id, r.message_id) for r in rows} == {(convo.pk, message.pk)}


def test_a_stream_that_died_is_billed_with_estimated_rows(user, endpoint):
    rows = record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=5, output_tokens=3),
                        context="abort", estimated=True)
    assert [r.estimated for r in rows] == [True, True]


def test_an_unknown_context_is_refused_clearly(user, endpoint):
    with pytest.raises(BillingError, match="Unknown usage context 'chat'"):
        record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=1), context="chat")


def test_a_rate_change_never_rewrites_history(user, endpoint):
    record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=10), context="message")
    endpoint.models.update(prompt_rate=D(100))
    record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=10), context="message")
    assert list(Transaction.objects.filter(token_type="prompt").order_by("id").values_list("rate", "credits")) == [
        (D(2), D(-20)), (D(100), D(-1000)),
    ]


def test_usage_is_recorded_even_when_the_roles_balance_is_disabled(make_user, endpoint):
    free = make_user("bob")  # USER role: balance disabled
    record_usage(user=free, endpoint=endpoint, model="m1", usage=Usage(output_tokens=10), context="title")
    assert credits(free) == ledger_sum(free)
    assert Transaction.objects.filter(user=free, context="title").count() == 1


def test_transactions_are_append_only(user):
    row = Transaction.objects.get(user=user)
    row.credits = D(1)
    with pytest.raises(ValidationError):
        row.save()
    with pytest.raises(ValidationError):
        row.delete()
    with pytest.raises(ValidationError):
        Transaction.objects.filter(user=user).update(credits=D(1))
    with pytest.raises(ValidationError):
        Transaction.objects.filter(user=user).delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the database-level guard is a PostgreSQL trigger")
def test_the_database_refuses_to_change_or_delete_a_transaction(user):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE billing_transaction SET credits = 1 WHERE user_id = %s", [user.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM billing_transaction WHERE user_id = %s", [user.pk])


def test_deleting_a_conversation_keeps_its_transactions(user, endpoint):
    from chat.models import Conversation, Message

    convo = Conversation.objects.create(user=user)
    message = Message.objects.create(conversation=convo, user=user, role="assistant")
    record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=4), context="message",
                 message=message)
    convo.delete()
    row = Transaction.objects.get(user=user, token_type="prompt")
    assert (row.conversation_id, row.message_id, row.credits) == (None, None, D(-8))
    assert credits(user) == ledger_sum(user)


# --- the balance check -----------------------------------------------------------------------------

def test_the_check_passes_when_the_balance_covers_the_prompt(user, endpoint):
    check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=5000)  # 10,000 credits exactly


def test_the_check_refuses_with_balance_tokens_and_estimated_cost(user, endpoint):
    with pytest.raises(InsufficientBalance) as refused:
        check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=5001)
    message = str(refused.value)
    assert "10,000 credits ($0.01)" in message
    assert "5,001 tokens" in message
    assert "10,002 credits ($0.010002)" in message
    assert isinstance(refused.value, BillingError)
    assert Hold.objects.count() == 0


def test_the_refusal_uses_the_display_currency(user, endpoint):
    from portal.models import PortalSettings

    settings = PortalSettings.load()
    settings.currency_code, settings.currency_symbol, settings.currency_rate = "EUR", "€", D("0.5")
    settings.save()
    with pytest.raises(InsufficientBalance, match=r"10,000 credits \(€0.005\)"):
        check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=6000)


def test_the_check_is_a_no_op_when_the_roles_balance_is_disabled(make_user, endpoint):
    free = make_user("bob")
    check_balance(user=free, endpoint=endpoint, model="m1", prompt_tokens=10**9)
    assert Hold.objects.count() == 0


def test_an_overdrawn_user_is_refused_even_for_an_empty_prompt(user, endpoint):
    adjust_balance(user=user, credits=D(-10_001), reason="test", by=None)
    with pytest.raises(InsufficientBalance):
        check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=0)


def test_an_admitted_request_holds_its_estimate_until_its_usage_is_recorded(user, endpoint):
    hold = check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=3000)  # holds 6,000
    with pytest.raises(InsufficientBalance, match="6,000 are held by your requests still in progress"):
        check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=3000)
    record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=3000), context="message",
                 release=hold)
    assert selectors.balance_summary(user=user).available == D(4000)  # the hold is released
    check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=2000)  # 4,000 left covers 4,000
    assert list(Hold.objects.values_list("credits", flat=True)) == [D(4000)]  # only the new request's hold


def test_a_hold_that_was_never_released_expires(user, endpoint, settings):
    check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=5000, now=T0)
    later = T0 + dt.timedelta(seconds=settings.BILLING_HOLD_SECONDS + 1)
    check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=5000, now=later)
    assert Hold.objects.count() == 1


def test_sequential_requests_overdraw_by_at_most_their_own_completion(user, endpoint):
    admitted = 0
    while True:
        try:
            hold = check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=1000)
        except InsufficientBalance:
            break
        admitted += 1
        record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=1000, output_tokens=500),
                     context="message", release=hold)
    assert admitted == 2  # 10,000 → 4,000 → -2,000
    assert credits(user) == D(-2000) and -credits(user) <= 500 * 8
    assert credits(user) == ledger_sum(user)


# --- auto-refill -----------------------------------------------------------------------------------

def test_no_refill_before_the_interval_has_elapsed(user):
    ensure_balance(user=user)
    Balance.objects.filter(user=user).update(last_refill_at=T0)
    assert refill_if_due(user=user, now=T0 + dt.timedelta(hours=23, minutes=59)) is None
    assert credits(user) == D(10_000)


def test_a_refill_is_recorded_once_the_interval_has_elapsed(user):
    Balance.objects.filter(user=user).update(last_refill_at=T0)
    refill = refill_if_due(user=user, now=T0 + dt.timedelta(days=1))
    assert (refill.token_type, refill.context, refill.credits) == ("refill", "refill", D(5000))
    assert credits(user) == D(15_000) == ledger_sum(user)
    assert Balance.objects.get(user=user).last_refill_at == T0 + dt.timedelta(days=1)
    assert refill_if_due(user=user, now=T0 + dt.timedelta(days=1, hours=1)) is None  # next one is a day later


def test_missed_intervals_refill_once(user):
    Balance.objects.filter(user=user).update(last_refill_at=T0)
    refill_if_due(user=user, now=T0 + dt.timedelta(days=10))
    assert credits(user) == D(15_000)


def test_a_refill_due_at_check_time_is_applied_before_refusing(user, endpoint):
    Balance.objects.filter(user=user).update(last_refill_at=T0)
    adjust_balance(user=user, credits=D(-10_000), reason="spent elsewhere", by=None)
    with pytest.raises(InsufficientBalance, match="refilled next at 2026-02-01 12:00"):
        check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=100, now=T0 + dt.timedelta(hours=1))
    check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=100, now=T0 + dt.timedelta(days=1))
    assert credits(user) == D(5000) == ledger_sum(user)


def test_a_refill_applied_at_check_time_is_kept_when_the_call_is_still_refused(user, endpoint):
    Balance.objects.filter(user=user).update(last_refill_at=T0)
    with pytest.raises(InsufficientBalance, match="you have 15,000 credits"):
        check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=9000, now=T0 + dt.timedelta(days=1))
    assert credits(user) == D(15_000) == ledger_sum(user)
    assert Transaction.objects.filter(user=user, token_type="refill").count() == 1


def test_no_refill_when_the_role_has_auto_refill_off(make_user, make_role):
    role = make_role(balance_enabled=True, auto_refill_enabled=False)
    quiet = make_user(role=role)
    Balance.objects.filter(user=quiet).update(last_refill_at=T0)
    assert refill_if_due(user=quiet, now=T0 + dt.timedelta(days=400)) is None


def test_monthly_refills_follow_the_calendar(make_user, make_role):
    role = make_role(balance_enabled=True, auto_refill_enabled=True, refill_interval_value=1,
                     refill_interval_unit="months", refill_amount=D(100), start_balance=D(0))
    monthly = make_user(role=role)
    Balance.objects.filter(user=monthly).update(last_refill_at=T0)  # Jan 31
    assert refill_if_due(user=monthly, now=dt.datetime(2026, 2, 28, 11, 59, tzinfo=dt.UTC)) is None
    assert refill_if_due(user=monthly, now=dt.datetime(2026, 2, 28, 12, 0, tzinfo=dt.UTC)) is not None
    assert credits(monthly) == D(100)


def test_intervals_in_every_unit():
    assert add_interval(T0, 90, "seconds") == T0 + dt.timedelta(seconds=90)
    assert add_interval(T0, 2, "minutes") == T0 + dt.timedelta(minutes=2)
    assert add_interval(T0, 3, "hours") == T0 + dt.timedelta(hours=3)
    assert add_interval(T0, 2, "weeks") == T0 + dt.timedelta(days=14)
    assert add_interval(T0, 1, "months") == T0.replace(month=2, day=28)
    assert add_interval(T0, 13, "months") == T0.replace(year=2027, month=2, day=28)
    assert add_interval(dt.datetime(2028, 1, 31, tzinfo=dt.UTC), 1, "months").day == 29


def test_the_beat_job_refills_exactly_the_due_balances(make_user, metered):
    due = [make_user(role=metered) for _ in range(3)]
    not_due = make_user(role=metered)
    Balance.objects.filter(user__in=due).update(last_refill_at=T0)
    Balance.objects.filter(user=not_due).update(last_refill_at=T0 + dt.timedelta(hours=12))
    assert refill_due_balances(now=T0 + dt.timedelta(days=1, hours=1), batch=2) == 3
    assert [credits(u) for u in due] == [D(15_000)] * 3 and credits(not_due) == D(10_000)
    assert refill_due_balances(now=T0 + dt.timedelta(days=1, hours=1)) == 0


def test_the_beat_job_is_scheduled_and_runs_as_a_celery_task(settings, make_user, metered):
    from billing.tasks import refill_due_balances as task

    entry = settings.CELERY_BEAT_SCHEDULE["billing-auto-refill"]
    assert entry["task"] == "billing.tasks.refill_due_balances" and entry["schedule"] > 0
    user = make_user(role=metered)
    Balance.objects.filter(user=user).update(last_refill_at=T0)
    assert task.apply().get() == 1  # runs the task body here, whatever the broker
    assert credits(user) == D(15_000)


# --- adjustments -----------------------------------------------------------------------------------

def test_an_adjustment_records_who_and_why(user, admin_user):
    row = adjust_balance(user=user, credits=D("2500.5"), reason="conference budget", by=admin_user)
    assert (row.token_type, row.context, row.credits, row.reason, row.created_by) == (
        "adjustment", "adjustment", D("2500.5"), "conference budget", admin_user,
    )
    adjust_balance(user=user, credits=D(-500), reason="correction", by=admin_user)
    assert credits(user) == D("12000.5") == ledger_sum(user)


@pytest.mark.parametrize(
    "amount, reason, error",
    [
        (D(0), "x", "non-zero"),
        (D(10), "  ", "Give a reason"),
        (D("0.0000001"), "x", "6 decimal places"),
        ("ten", "x", "not a number"),
        (D("NaN"), "x", "non-zero"),
    ],
)
def test_bad_adjustments_are_refused_with_a_clear_message(user, amount, reason, error):
    with pytest.raises(BillingError, match=error):
        adjust_balance(user=user, credits=amount, reason=reason, by=None)
    assert credits(user) == D(10_000)


# --- what people see -------------------------------------------------------------------------------

def test_a_user_sees_their_balance_in_credits_and_display_currency(user, endpoint):
    check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=1000)
    summary = selectors.balance_summary(user=user)
    assert (summary.enabled, summary.credits, summary.available, summary.display, summary.credits_display) == (
        True, D(10_000), D(8000), "$0.01", "10,000",
    )
    balance = Balance.objects.get(user=user)
    assert (summary.auto_refill, summary.refill_amount) == (True, D(5000))
    assert summary.next_refill_at == balance.last_refill_at + dt.timedelta(days=1)


def test_usage_per_message_and_per_conversation(user, endpoint, make_user):
    from chat.models import Conversation, Message

    convo = Conversation.objects.create(user=user)
    first = Message.objects.create(conversation=convo, user=user, role="assistant")
    second = Message.objects.create(conversation=convo, user=user, role="assistant")
    record_usage(user=user, endpoint=endpoint, model="m1", message=first, context="message",
                 usage=Usage.from_openai(prompt_tokens=100, completion_tokens=10, cached_tokens=40))
    record_usage(user=user, endpoint=endpoint, model="m1", message=second, context="abort", estimated=True,
                 usage=Usage(input_tokens=200, output_tokens=5))
    record_usage(user=user, endpoint=endpoint, model="m1", conversation=convo, context="title",
                 usage=Usage(input_tokens=30, output_tokens=3))

    usage = selectors.message_usage(user=user, message_ids=[first.pk, second.pk])
    assert (usage[first.pk].prompt_tokens, usage[first.pk].cache_read_tokens, usage[first.pk].completion_tokens,
            usage[first.pk].credits, usage[first.pk].cost, usage[first.pk].estimated) == (
        60, 40, 10, D(120 + 20 + 80), "$0.00022", False,
    )
    assert usage[second.pk].estimated is True and usage[second.pk].credits == D(440)

    totals = selectors.conversation_usage(user=user, conversation_id=convo.pk)
    assert totals.total.credits == D(220 + 440 + 84) and totals.total.total_tokens == 100 + 10 + 205 + 33
    assert totals.titles.credits == D(84) and set(totals.messages) == {first.pk, second.pk}

    stranger = make_user("mallory")
    assert selectors.message_usage(user=stranger, message_ids=[first.pk]) == {}
    assert selectors.conversation_usage(user=stranger, conversation_id=convo.pk).total.credits == 0


def test_the_usage_history_pages_through_the_users_ledger(user, endpoint, make_user):
    for _ in range(3):
        record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=1), context="message")
    other = make_user("carol")
    record_usage(user=other, endpoint=endpoint, model="m1", usage=Usage(input_tokens=1), context="message")
    page = selectors.usage_history(user=user, limit=2)
    assert [e.token_type for e in page] == ["prompt", "prompt"] and page[0].amount == "-$0.000002"
    rest = selectors.usage_history(user=user, limit=10, before_id=page[-1].id)
    assert [e.context for e in rest] == ["message", "start"]


# --- holds belong to their call --------------------------------------------------------------------

def test_a_posting_releases_only_the_hold_of_its_own_call(user, endpoint):
    first = check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=1000)  # holds 2,000
    second = check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=500)  # holds 1,000
    record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=500), context="message",
                 release=second)
    assert list(Hold.objects.values_list("call", "credits")) == [(first, D(2000))]
    assert Balance.objects.get(user=user).held == D(2000)
    record_usage(user=user, endpoint=endpoint, model="m1", usage=Usage(input_tokens=500), context="message",
                 release=second)  # released already: nothing more
    assert Balance.objects.get(user=user).held == D(2000)


def test_a_running_call_renews_its_hold_and_only_a_dead_calls_hold_expires(user, endpoint, settings):
    from billing import holds

    call = check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=2500, now=T0)  # holds 5,000
    lifetime = dt.timedelta(seconds=settings.BILLING_HOLD_SECONDS)
    holds.renew(call=call, now=T0 + lifetime / 2)
    with pytest.raises(InsufficientBalance):  # still held: 5,000 of 10,000 left, 6,000 asked
        check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=3000, now=T0 + lifetime)
    dead = T0 + lifetime * 2  # nobody renewed it since: its call died
    check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=3000, now=dead)
    assert Hold.objects.filter(call=call).count() == 0


# --- manage.py check_ledger ------------------------------------------------------------------------

def test_check_ledger_passes_on_sound_books_and_names_what_is_wrong_otherwise(user, endpoint, settings):
    from django.core.management import CommandError, call_command

    from billing import holds

    call = check_balance(user=user, endpoint=endpoint, model="m1", prompt_tokens=1000)
    call_command("check_ledger")  # a running call's hold is sound

    Balance.objects.filter(user=user).update(credits=D(123))  # a balance moved outside the ledger
    holds.renew(call=call, now=T0)  # a hold whose call died long ago
    with pytest.raises(CommandError) as failed:
        call_command("check_ledger")
    assert failed.value.returncode == 1
    assert "The ledger has 2 problem(s)" in str(failed.value)
    from billing.ledger_check import ledger_problems

    problems = ledger_problems()
    assert f"Balance of alice (user {user.pk}) is 123.000000 credits, its transactions sum to 10000.000000" in problems[0]
    assert f"Hold of call {call} (user {user.pk}, 2000.000000 credits) expired" in problems[1]
    assert "its call died and the hold was never released" in problems[1]
