"""Billing at the end of real chat turns on the loopback upstream: every token billed once, as the
provider reported it (Anthropic's `message_start` says output_tokens 1 and carries the cache
counts), at least the text delivered when an answer is interrupted, holds released by the call
that placed them, and answers without max_tokens bounded by what admission held.

The concurrent sends are PostgreSQL tests (SQLite serialises every writer); the rest run on both."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import Sum

from billing.ledger_check import ledger_problems
from billing.models import Balance, Hold, Transaction
from billing.services import adjust_balance, ensure_balance
from billing.tokens import count_tokens
from chat.services import Done, NoBalance, Operation, StopSignal, TurnAction, prepare_turn, stream_turn
from endpoints.adapters.types import TextDelta, Usage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent admissions need PostgreSQL: SQLite serialises every writer behind one lock",
)

D = Decimal
PROMPT_RATE, COMPLETION_RATE = D(100), D(1000)  # credits per token
CACHE_READ_RATE, CACHE_WRITE_RATE = D(10), D(125)
WINDOW = 4000  # tokens: an answer without max_tokens has a tenth of it, 400 tokens
ANSWER_BUDGET = WINDOW // 10


def db(fn, *args, **kwargs):
    return sync_to_async(fn)(*args, **kwargs)


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


@pytest.fixture
def rated(chat_endpoint):
    rates = {"prompt_rate": PROMPT_RATE, "completion_rate": COMPLETION_RATE, "cache_read_rate": CACHE_READ_RATE,
             "cache_write_rate": CACHE_WRITE_RATE, "context_tokens": WINDOW}

    def make(provider: str = "openai_chat"):
        return chat_endpoint(f"priced-{provider}", provider=provider, rates=rates)

    return make


def fund(user, credits: Decimal) -> None:
    """The user's role has balances on; the balance is set to `credits`."""
    role = user.role
    role.balance_enabled = True
    role.save()
    balance = ensure_balance(user=user)
    if balance.credits != credits:
        adjust_balance(user=user, credits=credits - balance.credits, reason="test funding", by=None)


async def send(user, endpoint, text: str = "hi", *, stop_after: int | None = None, **params) -> Done | None:
    """One turn to the end (None: refused for its balance). `stop_after`: press stop after that many
    text deltas."""
    action = TurnAction(op=Operation.SEND, text=text, endpoint=endpoint.name, model="test-model", params=params or None)
    try:
        turn = await prepare_turn(user=user, action=action)
    except NoBalance:
        return None
    stop = StopSignal()
    done, deltas = None, 0
    async for event in stream_turn(turn, stop=stop):
        if isinstance(event, TextDelta):
            deltas += 1
            if stop_after is not None and deltas == stop_after:
                stop.set()
        if isinstance(event, Done):
            done = event
    return done


def rows_of(done: Done) -> dict[str, tuple[int, bool]]:
    rows = Transaction.objects.filter(message_id=done.message_id)
    return {r.token_type: (r.tokens, r.estimated) for r in rows}


def credits(user) -> Decimal:
    return Balance.objects.get(user=user).credits


def assert_ledger_sound() -> None:
    assert ledger_problems() == []


def close_connections() -> None:
    from django.db import connections

    connections.close_all()


# --- 1. interrupted Anthropic answers bill at least what was delivered ----------------------------

ANTHROPIC_USAGE = Usage(input_tokens=20, cache_read_tokens=3000, cache_write_tokens=500, output_tokens=120)


@pytest.mark.parametrize("failure", [{"cut_after": 60}, {"error_after": 60}], ids=["cut", "error event"])
async def test_an_interrupted_anthropic_answer_bills_at_least_the_text_delivered(failure, rated, upstream, chatter):
    endpoint = await db(rated, "anthropic")
    upstream.reply(text=words(120), usage=ANTHROPIC_USAGE, **failure)

    done = await send(chatter, endpoint)

    delivered = count_tokens(done.text)
    assert done.text == words(60) + " " and delivered > 100  # not the 1 token message_start reported
    assert await db(rows_of, done) == {
        "prompt": (20, False), "cache_read": (3000, False), "cache_write": (500, False),  # as reported
        "completion": (delivered, True),  # the tokenizer's count of the text delivered
    }


async def test_a_finished_anthropic_answer_bills_the_reported_counts(rated, upstream, chatter):
    endpoint = await db(rated, "anthropic")
    upstream.reply(text=words(30), usage=ANTHROPIC_USAGE)

    done = await send(chatter, endpoint)

    assert await db(rows_of, done) == {
        "prompt": (20, False), "cache_read": (3000, False), "cache_write": (500, False), "completion": (120, False),
    }


# --- 2. stopping an Anthropic answer keeps the counts it reported ---------------------------------

async def test_stopping_an_anthropic_answer_keeps_its_reported_prompt_and_cache_counts(rated, upstream, chatter):
    endpoint = await db(rated, "anthropic")
    upstream.reply(text=words(200), usage=ANTHROPIC_USAGE, chunk_delay=0.01)

    done = await send(chatter, endpoint, stop_after=5)

    assert done.finish_reason == "stopped"
    rows = await db(rows_of, done)
    # the cached context at its cache rates, not the whole prompt estimated at the prompt rate
    assert {k: rows[k] for k in ("prompt", "cache_read", "cache_write")} == {
        "prompt": (20, False), "cache_read": (3000, False), "cache_write": (500, False),
    }
    assert rows["completion"] == (count_tokens(done.text), True)


# --- 3. a hold belongs to its call ----------------------------------------------------------------

async def test_a_finished_call_releases_its_own_hold_not_that_of_a_call_still_running(rated, upstream, chatter):
    endpoint = await db(rated)
    await db(fund, chatter, D(145_200))
    upstream.reply(text=words(100), usage=Usage(input_tokens=9, output_tokens=100), chunk_delay=0.02)  # A: slow
    upstream.reply(text=words(3), usage=Usage(input_tokens=9, output_tokens=3), model="other-model")  # B
    a = asyncio.create_task(send(chatter, endpoint, max_tokens=100))
    while await db(Hold.objects.count) == 0:
        await asyncio.sleep(0.01)
    (a_call,) = await db(lambda: list(Hold.objects.values_list("call", flat=True)))

    b = await send_model(chatter, endpoint, "other-model", max_tokens=3)

    assert b is not None and not b.unfinished and not a.done()
    assert await db(lambda: list(Hold.objects.values_list("call", flat=True))) == [a_call]  # A's, still running
    held = (await db(Balance.objects.get, user=chatter)).held
    assert held == (await db(Hold.objects.get, call=a_call)).credits
    await a
    assert await db(Hold.objects.count) == 0
    await db(assert_ledger_sound)
    await db(close_connections)


@postgresql_only
async def test_concurrent_sends_beside_a_running_call_overdraw_by_at_most_one_completion(rated, upstream, chatter):
    """The reproduction of the report: A (slow, max_tokens 100) runs, B (max_tokens 3) finishes, then
    20 concurrent sends with max_tokens 100 — only one of them fits beside A."""
    endpoint = await db(rated)
    await db(fund, chatter, D(145_200))
    one_completion = 100 * COMPLETION_RATE
    upstream.set_default(text=words(100), usage=Usage(input_tokens=9, output_tokens=100), chunk_delay=0.01)
    upstream.reply(text=words(3), usage=Usage(input_tokens=9, output_tokens=3), model="other-model")
    a = asyncio.create_task(send(chatter, endpoint, max_tokens=100))
    while await db(Hold.objects.count) == 0:
        await asyncio.sleep(0.01)
    b = await send_model(chatter, endpoint, "other-model", max_tokens=3)
    assert b is not None and not a.done()

    results = await asyncio.gather(*(send(chatter, endpoint, max_tokens=100) for _ in range(20)))
    await a

    assert sum(done is not None for done in results) == 1
    assert await db(credits, chatter) >= -one_completion
    await db(assert_ledger_sound)
    await db(close_connections)


async def send_model(user, endpoint, model: str, **params) -> Done | None:
    action = TurnAction(op=Operation.SEND, text="hi", endpoint=endpoint.name, model=model, params=params)
    turn = await prepare_turn(user=user, action=action)
    return [event async for event in stream_turn(turn)][-1]


# --- 4. without max_tokens, the answer is bounded by what was held ---------------------------------

async def test_without_max_tokens_a_metered_answer_is_limited_to_its_held_budget(rated, upstream, chatter):
    endpoint = await db(rated)
    await db(fund, chatter, D(10**9))
    upstream.reply(text=words(1000), usage=Usage(input_tokens=9, output_tokens=1000))

    done = await send(chatter, endpoint)

    assert upstream.last.json["max_tokens"] == ANSWER_BUDGET
    assert done.finish_reason == "length" and (await db(rows_of, done))["completion"] == (ANSWER_BUDGET, False)


async def test_without_balances_the_answer_keeps_the_providers_own_limit(rated, upstream, chatter):
    endpoint = await db(rated)
    upstream.reply(text=words(10))

    await send(chatter, endpoint)

    assert "max_tokens" not in upstream.last.json


@postgresql_only
async def test_fifty_concurrent_sends_without_max_tokens_overdraw_by_at_most_one_completion(rated, upstream, chatter):
    endpoint = await db(rated)
    prompt = count_tokens("hi") + 3 + 3  # the message's framing and the reply's priming
    call_cost = prompt * PROMPT_RATE + ANSWER_BUDGET * COMPLETION_RATE
    one_completion = ANSWER_BUDGET * COMPLETION_RATE
    await db(fund, chatter, 3 * call_cost)
    upstream.set_default(text=words(1000), usage=Usage(input_tokens=prompt, output_tokens=1000), chunk_delay=0.002)

    results = await asyncio.gather(*(send(chatter, endpoint) for _ in range(50)))

    admitted = [done for done in results if done is not None]
    assert 3 <= len(admitted) <= 4
    assert await db(credits, chatter) >= -one_completion
    await db(assert_ledger_sound)
    await db(close_connections)


# --- 6. a failure while billing does not lose the bill ---------------------------------------------

async def test_an_answer_whose_bill_failed_stays_recoverable_and_recovery_posts_it(rated, upstream, chatter):
    from django.utils import timezone

    from chat.models import Message
    from chat.recovery import recover_interrupted_answers
    from endpoints.models import Endpoint

    endpoint = await db(rated)
    await db(fund, chatter, D(10**9))
    upstream.reply(text=words(40), usage=Usage(input_tokens=9, output_tokens=40), chunk_delay=0.02)
    action = TurnAction(op=Operation.SEND, text="hi", endpoint=endpoint.name, model="test-model")
    turn = await prepare_turn(user=chatter, action=action)
    events = stream_turn(turn)
    async for event in events:
        if isinstance(event, TextDelta) and turn.saved is not None:  # (saving starts after the first delta)
            await turn.saved  # the answer's rows are in the database
            # an administrator deletes the endpoint while the answer streams: its ledger rows can
            # no longer point at it, so posting the bill fails when the answer ends
            await db(lambda: Endpoint.objects.filter(pk=endpoint.pk).delete())
            break
    done = [event async for event in events][-1]

    answer = await db(Message.objects.get, pk=done.message_id)
    assert answer.text == words(40) and not answer.unfinished  # the answer is kept
    assert answer.in_flight["bill"]["usage"]["output_tokens"] == 40  # and its bill, for recovery
    assert await db(Transaction.objects.filter(message_id=done.message_id).count) == 0

    later = timezone.now() + timezone.timedelta(minutes=10)
    assert await db(recover_interrupted_answers, now=later) == 1

    answer = await db(Message.objects.get, pk=done.message_id)
    assert answer.in_flight is None and answer.text == words(40) and answer.finish_reason == "stop"
    assert await db(rows_of, done) == {"prompt": (9, False), "completion": (40, False)}  # as reported
    assert await db(Hold.objects.count) == 0
    await db(assert_ledger_sound)
    assert await db(recover_interrupted_answers, now=later) == 0  # billed once
    total = await db(lambda: Transaction.objects.filter(user=chatter).aggregate(s=Sum("credits"))["s"])
    assert total == await db(credits, chatter)
