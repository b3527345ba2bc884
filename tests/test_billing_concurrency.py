"""The ledger under concurrency (PostgreSQL): many billed calls for one user at once, each thread
with its own database connection, going through the real check → (upstream) → record services."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Sum

from billing.ledger_check import ledger_problems
from billing.models import Balance, Hold, Transaction
from billing.services import InsufficientBalance, check_balance, record_usage
from endpoints.adapters.types import Usage

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite serialises every writer behind one database lock, so it cannot "
        "show a lost update; run with DATABASE_URL=postgres://…",
    ),
]

CALLS = 200
# 200 calls run on 32 threads at once: each thread holds its own connection, and PostgreSQL's
# default max_connections (100) is shared with the test database and other processes.
THREADS = 32
PROMPT, COMPLETION = 100, 50  # tokens per call
PROMPT_RATE, COMPLETION_RATE = Decimal(1), Decimal(2)  # credits per token
CALL_COST = PROMPT * PROMPT_RATE + COMPLETION * COMPLETION_RATE  # 200 credits
ONE_COMPLETION = COMPLETION * COMPLETION_RATE  # 100 credits


def run_calls(user, endpoint) -> dict[str, int]:
    """CALLS billed calls from THREADS threads released together; returns what happened."""
    outcome = {"upstream": 0, "refused": 0}
    lock = threading.Lock()
    pending = list(range(CALLS))
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def one_call() -> None:
        try:
            hold = check_balance(user=user, endpoint=endpoint, model="m", prompt_tokens=PROMPT,
                                 max_completion_tokens=COMPLETION)
        except InsufficientBalance:
            with lock:
                outcome["refused"] += 1
            return
        with lock:
            outcome["upstream"] += 1  # the provider call would happen here
        record_usage(user=user, endpoint=endpoint, model="m", context="message",
                     usage=Usage(input_tokens=PROMPT, output_tokens=COMPLETION), release=hold)

    def worker() -> None:
        try:
            start.wait()
            while True:
                with lock:
                    if not pending:
                        return
                    pending.pop()
                one_call()
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return outcome


@pytest.fixture
def endpoint(make_endpoint):
    return make_endpoint(models=("m",), rates={"prompt_rate": PROMPT_RATE, "completion_rate": COMPLETION_RATE,
                                               "context_tokens": 4096})


def ledger(user) -> tuple[Decimal, Decimal, int]:
    rows = Transaction.objects.filter(user=user)
    return Balance.objects.get(user=user).credits, rows.aggregate(s=Sum("credits"))["s"], rows.count()


def test_200_concurrent_calls_lose_no_update(make_role, make_user, endpoint):
    start = CALLS * CALL_COST + 1000
    user = make_user(role=make_role(balance_enabled=True, start_balance=start))
    outcome = run_calls(user, endpoint)
    balance, total, rows = ledger(user)
    assert outcome == {"upstream": CALLS, "refused": 0}
    assert rows == 1 + 2 * CALLS  # start balance + prompt and completion of every call
    assert balance == total == start - CALLS * CALL_COST == Decimal(1000)
    assert Hold.objects.count() == 0 and Balance.objects.get(user=user).held == 0  # every hold released
    assert ledger_problems() == []


def test_when_the_balance_covers_only_some_calls_the_rest_are_refused_before_the_upstream(
    make_role, make_user, endpoint
):
    start = 37 * CALL_COST + 150  # covers 37 calls, and the prompt of a 38th
    user = make_user(role=make_role(balance_enabled=True, start_balance=start))
    outcome = run_calls(user, endpoint)
    balance, total, rows = ledger(user)
    assert outcome["upstream"] + outcome["refused"] == CALLS
    assert 37 <= outcome["upstream"] <= 38 and outcome["refused"] >= CALLS - 38
    # refused calls recorded nothing: only the admitted calls are in the ledger
    assert rows == 1 + 2 * outcome["upstream"]
    assert balance == total == start - outcome["upstream"] * CALL_COST
    assert balance >= -ONE_COMPLETION  # overdrawn by at most one call's completion
    assert Hold.objects.count() == 0 and Balance.objects.get(user=user).held == 0  # every hold released
    assert ledger_problems() == []
