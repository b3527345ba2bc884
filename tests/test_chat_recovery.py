"""Answers whose process died mid-stream (chat/recovery.py): kept, marked interrupted, billed an
estimate once, their balance hold released — and answers still being written left alone.

A crashed turn is built as a dead process leaves it: the turn prepared (balance checked, hold
taken, conversation claimed), its rows saved and part of the answer flushed, then nothing more;
its claim expires (deleted here) and time passes (the `now` of a run, or rows as old as the crash).
One test kills a real daphne process mid-answer instead.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.db.models import F, Sum
from django.utils import timezone

from billing import selectors
from billing.models import Balance, Hold, Transaction
from billing.services import adjust_balance, check_balance, ensure_balance
from billing.tokens import count_tokens
from chat import store
from chat.claims import lock_key
from chat.models import Message
from chat.recovery import INTERRUPTED, INTERRUPTED_ERROR, recover_interrupted_answers
from chat.services import Operation, Turn, TurnAction, prepare_turn
from chat.tasks import recover_interrupted_answers as recovery_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

D = Decimal
PROMPT_RATE, COMPLETION_RATE = D(2), D(8)  # credits per token
START = D(1_000_000)


def db(fn, *args, **kwargs):
    return sync_to_async(fn)(*args, **kwargs)


@pytest.fixture
def endpoint(chat_endpoint):
    return chat_endpoint("Acme", rates={"prompt_rate": PROMPT_RATE, "completion_rate": COMPLETION_RATE})


@pytest.fixture
def metered(chatter):
    """The chatter's role with balances on, so every answer holds its estimate until billed."""
    role = chatter.role
    role.balance_enabled, role.start_balance = True, START
    role.save()
    balance = ensure_balance(user=chatter)
    if balance.credits != START:  # opened earlier under the role's former start balance
        adjust_balance(user=chatter, credits=START - balance.credits, reason="test top-up", by=None)
    return chatter


# --- a crashed turn --------------------------------------------------------------------------------

async def crashed_turn(user, written: str, *, action: TurnAction | None = None, endpoint=None) -> Turn:
    """A turn whose process died after flushing `written`: the claim is still there (until it expires)."""
    action = action or TurnAction(op=Operation.SEND, text="Tell me a story", endpoint=endpoint.name, model="test-model")
    turn = await prepare_turn(user=user, action=action)
    await turn.start_saving()  # the rows, as saved after the first token
    await db(_flush, turn, written)
    return turn


def _flush(turn: Turn, written: str) -> None:
    """What the turn's periodic flush writes: the answer so far."""
    text = turn.prefix_text + written
    Message.objects.filter(pk=turn.assistant_message.pk).update(
        text=text, content=[*turn.prefix_parts, {"type": "text", "text": text}], updated_at=timezone.now()
    )


def claim_expires(turn: Turn) -> None:
    store.delete_sync(lock_key(turn.conversation.pk))


def minutes_pass(turn: Turn, minutes: int) -> None:
    """The crash happened `minutes` ago: the answer was last written then."""
    Message.objects.filter(pk=turn.assistant_message.pk).update(updated_at=F("updated_at") - dt.timedelta(minutes=minutes))


def later(seconds: int | None = None) -> dt.datetime:
    """A moment just past the grace period from now."""
    return timezone.now() + dt.timedelta(seconds=(seconds or settings.CHAT_RECOVERY_GRACE_SECONDS) + 1)


def message(turn: Turn) -> Message:
    return Message.objects.get(pk=turn.assistant_message.pk)


def rows_of(turn: Turn) -> list[Transaction]:
    return list(Transaction.objects.filter(message_id=turn.assistant_message.pk).order_by("token_type"))


def ledger_total(user) -> Decimal:
    return Transaction.objects.filter(user=user).aggregate(s=Sum("credits"))["s"] or D(0)


def assert_books_balance(user) -> None:
    """The balance equals the sum of the user's transactions, and none of it is held any more."""
    balance = Balance.objects.get(user=user)
    assert balance.credits == ledger_total(user)
    assert selectors.balance_summary(user=user).available == balance.credits


def assert_interrupted_and_billed(turn: Turn, written: str) -> None:
    answer = message(turn)
    assert answer.text == turn.prefix_text + written  # what was written is kept
    assert (answer.finish_reason, answer.error, answer.unfinished) == (INTERRUPTED, INTERRUPTED_ERROR, True)
    assert answer.in_flight is None
    rows = [r for r in rows_of(turn) if r.context == "abort"]
    output = count_tokens(written)
    assert [(r.token_type, r.tokens, r.rate, r.credits, r.estimated) for r in rows] == [
        ("completion", output, COMPLETION_RATE, -output * COMPLETION_RATE, True),
        ("prompt", turn.prompt_tokens, PROMPT_RATE, -turn.prompt_tokens * PROMPT_RATE, True),
    ]
    assert {r.conversation_id for r in rows} == {turn.conversation.pk}


# --- tests -----------------------------------------------------------------------------------------

async def test_an_answer_whose_process_died_is_kept_marked_interrupted_and_billed_once(endpoint, metered):
    written = "Once upon a time, in a data centre far away, a server"
    turn = await crashed_turn(metered, written, endpoint=endpoint)
    held = await db(lambda: selectors.balance_summary(user=metered))
    assert held.available < held.credits  # the crashed turn's hold
    await db(claim_expires, turn)
    await db(minutes_pass, turn, 5)

    assert await db(lambda: recovery_task.apply().get()) == 1  # the beat task

    await db(assert_interrupted_and_billed, turn, written)
    answer = await db(message, turn)
    assert (answer.prompt_tokens, answer.completion_tokens) == (turn.prompt_tokens, count_tokens(written))
    assert (await db(Message.objects.get, pk=turn.user_message.pk)).text == "Tell me a story"
    await db(assert_books_balance, metered)
    assert not await db(Hold.objects.filter(user=metered).exists)  # gone, not waiting for the next check

    # a second run (and a run much later) changes nothing
    before = await db(lambda: (message(turn).updated_at, list(Transaction.objects.values_list("pk", flat=True))))
    assert await db(recover_interrupted_answers) == 0
    assert await db(recover_interrupted_answers, now=later(3600)) == 0
    after = await db(lambda: (message(turn).updated_at, list(Transaction.objects.values_list("pk", flat=True))))
    assert after == before


async def test_an_answer_with_a_live_claim_or_a_recent_write_is_left_alone(endpoint, metered):
    claimed = await crashed_turn(metered, "Still claimed", endpoint=endpoint)
    await db(minutes_pass, claimed, 10)  # silent for long, but its conversation is still claimed
    recent = await crashed_turn(metered, "Written just now", endpoint=endpoint)
    await db(claim_expires, recent)  # unclaimed, but written within the grace period

    assert await db(recover_interrupted_answers) == 0

    for turn, written in ((claimed, "Still claimed"), (recent, "Written just now")):
        answer = await db(message, turn)
        assert answer.in_flight is not None and answer.text == written
        assert (answer.finish_reason, answer.error, answer.prompt_tokens) == ("", "", None)
        assert await db(rows_of, turn) == []
    assert await db(Hold.objects.filter(user=metered).count) == 2

    # once the claim has expired, the silent one is finished; the recent one waits for its grace period
    await db(claim_expires, claimed)
    assert await db(recover_interrupted_answers) == 1
    await db(assert_interrupted_and_billed, claimed, "Still claimed")
    assert (await db(message, recent)).in_flight is not None
    assert await db(recover_interrupted_answers, now=later()) == 1
    await db(assert_interrupted_and_billed, recent, "Written just now")
    await db(assert_books_balance, metered)


async def test_an_answer_streaming_right_now_is_never_touched(chat_socket, endpoint, upstream, metered):
    words = " ".join(f"w{i}" for i in range(100))
    upstream.reply(text=words, chunk_delay=0.03)
    socket = await chat_socket()
    await socket.send(type="send", text="Talk slowly", endpoint=endpoint.name, model="test-model")
    message_id = (await socket.until("created"))[-1]["assistant_message_id"]
    await _first_flush(message_id)  # saved and in flight

    # however late it is, a conversation whose answer is being written is not recovered
    assert await db(recover_interrupted_answers, now=later(3600)) == 0

    done = (await socket.until("done"))[-1]
    assert (done["finish_reason"], done["unfinished"]) == ("stop", False)
    answer = await db(Message.objects.get, pk=message_id)
    assert answer.text == words and answer.in_flight is None and answer.error == ""
    rows = await db(lambda: list(Transaction.objects.filter(message_id=message_id)))
    assert rows and {r.context for r in rows} == {"message"}  # billed once, by the turn itself
    assert await db(recover_interrupted_answers, now=later(3600)) == 0
    await db(assert_books_balance, metered)


async def test_a_continued_answer_is_billed_for_what_the_interrupted_turn_added(chat_socket, endpoint, upstream, metered):
    upstream.reply(text="The first part.", finish="length")
    socket = await chat_socket()
    first = await socket.ask("Write at length", endpoint=endpoint.name, model="test-model")
    before = await db(Message.objects.get, pk=first.message_id)
    assert before.unfinished and before.finish_reason == "length"

    action = TurnAction(op=Operation.CONTINUE, message_id=before.pk)
    turn = await crashed_turn(metered, " And the second part", action=action)
    await db(claim_expires, turn)
    assert await db(recover_interrupted_answers, now=later()) == 1

    await db(assert_interrupted_and_billed, turn, " And the second part")
    answer = await db(message, turn)
    assert answer.text == "The first part. And the second part"
    assert answer.prompt_tokens == before.prompt_tokens + turn.prompt_tokens
    assert answer.completion_tokens == before.completion_tokens + count_tokens(" And the second part")
    await db(assert_books_balance, metered)


async def test_concurrent_runs_finish_and_bill_each_answer_once(endpoint, metered):
    turns = [await crashed_turn(metered, f"Answer number {i} was cut", endpoint=endpoint) for i in range(6)]
    for turn in turns:
        await db(claim_expires, turn)
    when = later()

    finished = await db(_run_concurrently, 4, when)
    finished += await db(recover_interrupted_answers, now=when)  # any a locked SQLite write made wait

    assert finished == len(turns)
    for i, turn in enumerate(turns):
        await db(assert_interrupted_and_billed, turn, f"Answer number {i} was cut")
    await db(assert_books_balance, metered)


def _run_concurrently(runs: int, now: dt.datetime) -> int:
    start = threading.Barrier(runs)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            results.append(recover_interrupted_answers(now=now))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return sum(results)


async def test_an_expired_hold_is_not_released_twice(endpoint, metered):
    """Recovered after its hold expired: recording the usage must not release the hold of another
    request of the user that is still running."""
    turn = await crashed_turn(metered, "Long ago", endpoint=endpoint)
    await db(claim_expires, turn)
    much_later = timezone.now() + dt.timedelta(seconds=settings.BILLING_HOLD_SECONDS + 60)
    # another answer starts then (its check drops the expired hold and takes its own)
    await db(check_balance, user=metered, endpoint=endpoint, model="test-model", prompt_tokens=1000, now=much_later)

    assert await db(recover_interrupted_answers, now=much_later + dt.timedelta(seconds=1)) == 1

    await db(assert_interrupted_and_billed, turn, "Long ago")
    summary = await db(selectors.balance_summary, user=metered, now=much_later + dt.timedelta(seconds=2))
    assert summary.credits - summary.available == 1000 * PROMPT_RATE  # the running request still holds its estimate
    balance = await db(Balance.objects.get, user=metered)
    assert balance.credits == await db(ledger_total, metered)


async def test_a_daphne_killed_mid_answer_leaves_an_answer_the_job_finishes(endpoint, upstream, metered):
    from tests.chatsocket import open_real_socket, session_cookie
    from tests.daphne import Daphne

    cookie = await db(session_cookie, metered)
    words = " ".join(f"w{i}" for i in range(400))
    upstream.reply(text=words, chunk_delay=0.02)
    server = await db(lambda: Daphne(name="daphne-killed").start())
    try:
        socket = await open_real_socket(server.ws_url, cookie)
        await socket.send(type="send", text="Talk for a while", endpoint=endpoint.name, model="test-model")
        created = (await socket.until("created"))[-1]
        message_id = created["assistant_message_id"]
        await _first_flush(message_id)
        server.process.kill()  # SIGKILL: no cleanup of any kind
        server.process.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.close(), 2)
    finally:
        server.stop()

    written = (await db(Message.objects.get, pk=message_id)).text  # the last flush before the kill
    assert written and words.startswith(written) and written != words
    if settings.REDIS_URL:  # the dead process's claim outlives it until it expires
        assert await db(store.get_sync, lock_key(created["conversation_id"])) is not None
        assert await db(recover_interrupted_answers, now=later()) == 0
        await db(store.delete_sync, lock_key(created["conversation_id"]))
    assert await db(Hold.objects.filter(user=metered).count) == 1

    assert await db(recover_interrupted_answers, now=later()) == 1

    answer = await db(Message.objects.get, pk=message_id)
    assert (answer.text, answer.finish_reason, answer.error) == (written, INTERRUPTED, INTERRUPTED_ERROR)
    rows = await db(lambda: list(Transaction.objects.filter(message_id=message_id).order_by("token_type")))
    assert [(r.token_type, r.tokens, r.context, r.estimated) for r in rows] == [
        ("completion", count_tokens(written), "abort", True),
        ("prompt", answer.prompt_tokens, "abort", True),
    ]
    assert answer.prompt_tokens > 0
    await db(assert_books_balance, metered)


async def _first_flush(message_id: str, timeout: float = 10.0) -> str:
    """Wait until the streaming answer has been flushed to the database at least once."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        row = await db(lambda: Message.objects.filter(pk=message_id).values_list("text", flat=True).first())
        if row:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError("the answer was never flushed")
