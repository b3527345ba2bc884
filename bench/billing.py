"""Billing benchmark: the cost of a ledger write and of admission beside the floor (one INSERT +
COMMIT), and usage-report queries on a ledger of a million transactions. Prints figures; asserts
nothing.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atrium python bench/billing.py [--rows 1000000] [--calls 2000]

Runs in a throw-away database next to DATABASE_URL's (`<name>_bench`, created, migrated, dropped at
the end like a test database; `--keep` keeps it and reuses its seeded ledger on the next run), so it
never touches real data. Targets: recording ≤ 2 ms per call (p50), each report and the dashboard < 1 s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
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

MODELS_PER_ENDPOINT = 3


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def bench_record_usage(calls: int) -> None:
    """The ledger write (record_usage → billing.ledger.post, settling the call's hold) and admission
    (check_balance → billing.holds.admit), each timed alone, beside the floor: one 1-row INSERT +
    COMMIT on the same connection, in the same run."""
    from accounts.models import IntervalUnit, Role, User
    from billing.services import check_balance, rates_for, record_usage
    from endpoints.adapters.types import Usage
    from endpoints.models import Endpoint, EndpointModel

    role, _ = Role.objects.get_or_create(
        name="BENCH", defaults={"balance_enabled": True, "start_balance": Decimal(10**12)}
    )
    refilled, _ = Role.objects.get_or_create(
        name="BENCH-REFILL", defaults={
            "balance_enabled": True, "start_balance": Decimal(10**12), "auto_refill_enabled": True,
            "refill_amount": Decimal(1000), "refill_interval_value": 30, "refill_interval_unit": IntervalUnit.DAYS,
        },
    )
    user, _ = User.objects.get_or_create(username="bench-recorder", defaults={"role": role})
    refill_user, _ = User.objects.get_or_create(username="bench-refilled", defaults={"role": refilled})
    endpoint, _ = Endpoint.objects.get_or_create(
        name="bench-endpoint", defaults={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-bench-0000"}
    )
    EndpointModel.objects.get_or_create(
        endpoint=endpoint, name="bench-model",
        defaults={"prompt_rate": Decimal("2.5"), "completion_rate": Decimal(10), "context_tokens": 128000,
                  "cache_read_rate": Decimal("1.25")},
    )
    usage = Usage.from_openai(prompt_tokens=1200, completion_tokens=350, cached_tokens=800)
    rates = rates_for(endpoint=endpoint, model="bench-model")  # the chat turn has them cached

    def admit(who=user):
        return check_balance(user=who, endpoint=endpoint, model="bench-model", prompt_tokens=1200,
                             max_completion_tokens=12800, rates=rates)

    def record(hold=None, who=user) -> None:
        record_usage(user=who, endpoint=endpoint, model="bench-model", usage=usage, context="message",
                     rates=rates, release=hold)

    for _ in range(500):  # warm up: connection, caches, query plans, the balance row's page
        record(admit())
        record(admit(refill_user), who=refill_user)

    def timed(fn, before=None, after=None) -> list[float]:
        """`fn` timed alone; `before` (untimed) prepares its argument, `after` cleans up."""
        samples = []
        for _ in range(calls):
            argument = before() if before is not None else None
            started = time.perf_counter()
            result = fn(argument) if before is not None else fn()
            samples.append((time.perf_counter() - started) * 1000)
            if after is not None:
                after(result)
        return samples

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_floor_durable (x int)")

    def commit_floor() -> None:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_floor_durable VALUES (1)")

    results = [
        ("floor: 1-row INSERT + COMMIT", timed(commit_floor)),
        ("ledger write (3 rows + its hold)", timed(record, before=admit)),
        ("admission", timed(admit, after=record)),
        ("admission, role with auto-refill", timed(lambda: admit(refill_user), after=lambda h: record(h, refill_user))),
        ("admission + ledger write", timed(lambda: record(admit()))),
        ("floor: 1-row INSERT + COMMIT (again)", timed(commit_floor)),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")  # this session only: the database work, no disk flush
    results.append(("ledger write, no commit flush", timed(record, before=admit)))
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = on")
        cursor.execute("DROP TABLE bench_floor_durable")
    for label, samples in results:
        print(f"{label:<38} calls={calls}  p50={percentile(samples, .5):.3f} ms  "
              f"p99={percentile(samples, .99):.3f} ms  mean={statistics.fmean(samples):.3f} ms")


def seed(rows: int) -> None:
    """`rows` usage transactions over 90 days for 1,000 users in 5 roles, 10 endpoints × 3 models,
    written with COPY in time order, as an append-only ledger grows (so a short period's rows sit
    together on disk, as they do in production)."""
    from accounts.models import Role, User
    from billing.models import Transaction
    from endpoints.models import Endpoint

    existing = Transaction.objects.filter(context="gateway").count()
    if existing >= rows:
        print(f"ledger already seeded: {existing:,} rows")
        return
    started = time.perf_counter()
    roles = [Role.objects.get_or_create(name=f"BENCH{i}")[0] for i in range(5)]
    User.objects.bulk_create(
        [User(username=f"bench{i}", role=roles[i % 5]) for i in range(1000)], ignore_conflicts=True
    )
    users = list(User.objects.filter(username__startswith="bench").exclude(username="bench-recorder")
                 .values_list("pk", "role_id"))
    endpoints = []
    for i in range(10):
        endpoint, _ = Endpoint.objects.get_or_create(
            name=f"bench-e{i}", defaults={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-bench-0000"}
        )
        endpoints.append(endpoint)
    rng = random.Random(1)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)
    types = [("prompt", Decimal("2.5")), ("completion", Decimal(10)), ("cache_read", Decimal("1.25")),
             ("cache_write", Decimal("3.75"))]
    buffer = io.StringIO()
    offsets = sorted(rng.randrange(90 * 86400) for _ in range(rows - existing))
    for n in range(rows - existing):
        user_id, role_id = users[rng.randrange(len(users))]
        endpoint = endpoints[rng.randrange(10)]
        token_type, rate = types[rng.randrange(4)] if n % 3 else types[n % 2]
        tokens = rng.randint(1, 4000)
        created = start + dt.timedelta(seconds=offsets[n])
        buffer.write(
            f"{user_id}\t{role_id}\t{endpoint.pk}\t{endpoint.name}\t{endpoint.name}-m{rng.randrange(3)}\t"
            f"{token_type}\t{tokens}\t{rate}\t{-tokens * rate}\tgateway\tf\t\t{created.isoformat()}\n"
        )
    buffer.seek(0)
    with connection.cursor() as cursor:
        columns = ("user_id, role_id, endpoint_id, endpoint_name, model, token_type, tokens, rate, credits, "
                   "context, estimated, reason, created_at")
        with cursor.cursor.copy(f"COPY billing_transaction ({columns}) FROM STDIN") as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE billing_transaction")
    print(f"seeded {rows - existing:,} transactions with COPY in {time.perf_counter() - started:.1f} s")


def bench_reports(repeat: int = 3) -> None:
    from billing.selectors import usage_report

    today = dt.date.today()
    spans = {"all 90 days": (None, None), "last 30 days": (today - dt.timedelta(days=29), today)}
    for span, (first, last) in spans.items():
        for group_by in ("user", "role", "endpoint", "model", "day"):
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                rows, totals = usage_report(group_by=group_by, start=first, end=last)
                samples.append((time.perf_counter() - started) * 1000)
            print(f"report by {group_by:<8} {span:<12} groups={len(rows):>5}  "
                  f"best={min(samples):.0f} ms  median={statistics.median(samples):.0f} ms")


def bench_dashboard(repeat: int = 3) -> None:
    """The admin's landing page (billing/dashboard.py): every figure of a period, as it renders."""
    from billing.dashboard import dashboard

    today = dt.date.today()
    for days in (7, 30, 90):
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            board = dashboard(start=today - dt.timedelta(days=days - 1), end=today)
            samples.append((time.perf_counter() - started) * 1000)
        print(f"dashboard, last {days:>2} days  bars={len(board.bars):>3} endpoints={len(board.health):>3}  "
              f"best={min(samples):.0f} ms  median={statistics.median(samples):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="transactions to seed for the reports")
    parser.add_argument("--calls", type=int, default=2000, help="timed record_usage calls")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the benchmark database")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/billing.py needs PostgreSQL: set DATABASE_URL=postgres://… (see the docstring).")
    creation = connection.creation
    original = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{original}_bench"  # not pytest's test_<name>
    name = creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=args.keep)
    print(f"database {name} (PostgreSQL {connection.cursor().connection.info.server_version})")
    try:
        bench_record_usage(args.calls)
        seed(args.rows)
        bench_reports()
        bench_dashboard()
    finally:
        if not args.keep:
            creation.destroy_test_db(original, verbosity=0)


if __name__ == "__main__":
    main()
