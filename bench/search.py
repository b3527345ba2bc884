"""Search benchmark: one user's searches over a library of a million messages. Prints figures;
asserts nothing.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atrium python bench/search.py [--messages 1000000] [--runs 200]

Seeds (COPY) 100 users × 100 conversations × 100 messages of generated English text, one in ten
messages Chinese, in a throw-away database next to DATABASE_URL's (`<name>_bench`, created, migrated,
dropped at the end; `--keep` keeps it and reuses the seeded rows). Then times `chat.search.
search_messages` (the API's search, with its snippets) for random users: a common and a rare English
word, a phrase, a common and a rare Chinese word. Target: p95 < 100 ms each.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

USERS = 100
WORDS = (
    "the a to of and in is it for that you this with on be as are can or if data report model query server "
    "table user time file code test error value list page team plan meeting budget customer review release "
    "design network cache index build deploy python function result issue update change project summary"
).split()
RARE_WORD = "zyzzogeton"  # in about one message in 20,000
CHINESE = [
    "我们需要讨论数据库迁移的计划", "请帮我总结一下这份报告", "明天的会议改到下午三点", "这个函数的返回值不对",
    "客户希望下周看到新的设计", "服务器的缓存需要清理", "数据分析的结果已经出来了", "请检查一下测试用例",
]
RARE_CHINESE = "量子纠缠"
QUERIES = [
    ("common word", "report"),
    ("rare word", RARE_WORD),
    ("phrase", '"budget review"'),
    ("common Chinese", "数据"),
    ("rare Chinese", RARE_CHINESE),
]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.1:
        sentence = rng.choice(CHINESE) + "，" + rng.choice(CHINESE)
        return sentence + (RARE_CHINESE if rng.random() < 0.0005 else "") + "。"
    words = rng.choices(WORDS, k=rng.randint(8, 40))
    if rng.random() < 0.00005:
        words.insert(rng.randrange(len(words)), RARE_WORD)
    return " ".join(words).capitalize() + "."


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def seed(messages: int) -> list[int]:
    from accounts.models import User

    users = [User.objects.get_or_create(username=f"bench-search-{i}")[0].pk for i in range(USERS)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_message")
        have = cursor.fetchone()[0]
    if have >= messages:
        print(f"reusing {have:,} seeded messages")
        return users
    per_conversation = 100
    conversations = messages // per_conversation
    rng = random.Random(17)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    with connection.cursor() as cursor:
        # the indexes are built once after the load: cheaper than growing them a row at a time
        cursor.execute("DROP INDEX IF EXISTS msg_search")
        cursor.execute("DROP INDEX IF EXISTS msg_search_trgm")
        convo_rows, message_rows = io.StringIO(), io.StringIO()
        for index in range(conversations):
            user = users[index % USERS]
            convo, created = uuid.uuid4(), start + timedelta(minutes=index * 50)
            convo_rows.write(f"{convo}\t{user}\tChat {index}\topenAI\tgpt-4o\t{{}}\t\tf\tf\t{created}\t{created}\n")
            parent = "\\N"
            for position in range(per_conversation):
                mid = uuid.uuid4()
                role = "user" if position % 2 == 0 else "assistant"
                at = created + timedelta(seconds=position * 20)
                text = _escape(_text(rng))
                message_rows.write(f"{mid}\t{convo}\t{user}\t{parent}\t{role}\t[]\t{text}\tgpt-4o\t\t\t\tf\t{at}\t{at}\n")
                parent = str(mid)
        _copy(cursor, "chat_conversation", "id, user_id, title, endpoint_name, model, params, system_prompt, "
              "temporary, archived, created_at, updated_at", convo_rows)
        _copy(cursor, "chat_message", "id, conversation_id, user_id, parent_id, role, content, text, model, sender, "
              "finish_reason, error, unfinished, created_at, updated_at", message_rows)
        loaded = time.perf_counter()
        cursor.execute("CREATE INDEX msg_search ON chat_message USING gin (user_id, search_vector)")
        cursor.execute("CREATE INDEX msg_search_trgm ON chat_message USING gin (text gin_trgm_ops)")
        cursor.execute("VACUUM ANALYZE chat_message")
        cursor.execute("VACUUM ANALYZE chat_conversation")
    print(f"seeded {messages:,} messages in {conversations:,} conversations of {USERS} users: "
          f"COPY {loaded - began:.0f} s, indexes {time.perf_counter() - loaded:.0f} s")
    return users


def _copy(cursor, table: str, columns: str, rows: io.StringIO) -> None:
    rows.seek(0)
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        while chunk := rows.read(1 << 20):
            copy.write(chunk)


def bench_queries(users: list[int], runs: int) -> None:
    from accounts.models import User
    from chat.search import search_messages

    people = list(User.objects.filter(pk__in=users))
    rng = random.Random(3)
    for label, query in QUERIES:
        timings, found = [], []
        for attempt in range(runs + 10):
            user = rng.choice(people)
            began = time.perf_counter()
            hits = search_messages(user=user, query=query, limit=20)
            if attempt >= 10:  # the first runs warm the caches and plans
                timings.append((time.perf_counter() - began) * 1000)
                found.append(len(hits))
        print(f"{label:15} {query!r:18} p50 {percentile(timings, 0.5):6.1f} ms  p95 {percentile(timings, 0.95):6.1f} ms"
              f"  (hits per page: mean {statistics.mean(found):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200, help="timed searches per query")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the benchmark database")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/search.py needs PostgreSQL: set DATABASE_URL=postgres://… (see the docstring).")
    creation = connection.creation
    original = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{original}_bench"
    name = creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=args.keep)
    print(f"database {name} (PostgreSQL {connection.cursor().connection.info.server_version})")
    try:
        users = seed(args.messages)
        bench_queries(users, args.runs)
    finally:
        if not args.keep:
            creation.destroy_test_db(original, verbosity=0)


if __name__ == "__main__":
    main()
