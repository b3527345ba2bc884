"""Time to first token added by Atrium over calling the upstream directly.

    python bench/ttft.py [--requests 400] [--concurrency 1 50] [--words 12] [--chunk-ms 0]
                         [--balances off on refill] [--servers 1] [--floor] [--rounds 4] [--baseline DIR]

Starts the loopback upstream test server (tests/upstream.py, OpenAI Chat Completions wire format)
and a real daphne running Atrium, both in their own processes, then measures at each concurrency:

* direct — a streaming POST to the upstream's /v1/chat/completions (pooled httpx connections, as
  Atrium's adapter does): time from sending the request to the first content chunk;
* atrium — `send` over an already open chat websocket (one socket per concurrent stream, each
  sending one question after another, each a new conversation): time from sending the frame to the
  first `delta` frame. This includes the permission and balance checks, saving both messages,
  building the context, the upstream call and the publication through the channel layer.

It reports p50/p99 of both, the difference (the time Atrium adds) and the answers per second each
path completed.

`--floor` measures a third path the same way as Atrium's: `bench/floor.py`, a bare streaming proxy
on the same stack (daphne, channels, Atrium's httpx client and adapter; no sign-in, database, Redis
or billing) in a daphne of its own. The time it adds is what the stack itself costs on this
machine; Atrium's own share is the difference between the two.

How the upstream answers matters at 50 streams. By default it writes the whole answer at once
(`--words 12`, no pause between chunks), so each socket asks again the moment an answer ends: the
benchmark then measures a server running flat out (queueing behind 49 other turns, not the time one
turn adds). `--chunk-ms 20 --words 60` streams like a real model instead (a chunk every 20 ms, an
answer in about 1.2 s), so 50 answers are in flight at once, as with 50 users reading along. The database and Redis are
the ones in the environment (DATABASE_URL / REDIS_URL, as in production); with neither set, the
embedded default in a temporary directory. A bench user and endpoint are created in that database.

`--servers N` runs N daphne processes on the one port (each its own listening socket, the kernel
spreading the sockets over them: one process per core, as in production); it needs REDIS_URL (the
processes share the channel layer and the chat store through it).

`--baseline DIR` also measures Atrium as served from another checkout (e.g. `git worktree add
/tmp/atrium-main main`), in a daphne of its own on the same database and Redis, the same way and in
the same run, in --rounds turns each, alternating which goes first: a change and the code before it
compared on the machine as it is at that moment.

Both paths are warmed up first: 20 requests one after another, then one round at full
concurrency (so the measured requests find warm connections, as a busy server's do).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UPSTREAM_PROGRAM = """
import os, sys, time
from tests.upstream import Upstream
from endpoints.adapters.types import Usage
words = int(os.environ.get("BENCH_WORDS", "12"))
text = " ".join(("Hello there, this is the first token and then some more.".split() * (words // 12 + 1))[:words])
server = Upstream()
server.set_default(text=text, chunk_delay=float(os.environ.get("BENCH_CHUNK_MS", "0")) / 1000,
                   usage=Usage(input_tokens=20, output_tokens=words))
# Small SSE writes must leave at once (as a real provider's server does), not wait for Nagle's algorithm.
server._server.RequestHandlerClass.disable_nagle_algorithm = True
server.start()
print(server.url, flush=True)
sys.stdin.read()
server.stop()
"""


ERRORS: list[str] = []  # answers that failed (reported, left out of the figures)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL") and not os.environ.get("ATRIUM_DATA_DIR"):
        os.environ["ATRIUM_DATA_DIR"] = tempfile.mkdtemp(prefix="atrium-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


# --balances: which bench users to measure, each a role of its own
BALANCE_MODES = {
    "off": "no balance (the role's balances are off)",
    "on": "balances on (admission, hold and bill on every answer)",
    "refill": "balances on with monthly auto-refill (not due: admission checks it)",
}


def make_fixtures(upstream_url: str, modes: list[str]) -> tuple[dict[str, str], str]:
    """The bench endpoint and one signed-in user per balance mode: (cookies by mode, endpoint name)."""
    from decimal import Decimal

    from accounts.models import IntervalUnit, Role, User
    from billing.services import adjust_balance, ensure_balance
    from endpoints.models import Endpoint, EndpointModel
    from tests.chatsocket import session_cookie

    roles = {
        "off": None,
        "on": dict(balance_enabled=True, start_balance=Decimal(10) ** 12, auto_refill_enabled=False),
        "refill": dict(balance_enabled=True, start_balance=Decimal(10) ** 12, auto_refill_enabled=True,
                       refill_amount=Decimal(1000), refill_interval_value=1, refill_interval_unit=IntervalUnit.MONTHS),
    }
    cookies = {}
    for mode in modes:
        user, _ = User.objects.get_or_create(username=f"bench-{mode}", defaults={"email": f"bench-{mode}@example.com"})
        policy = roles[mode]
        user.role = (
            Role.objects.update_or_create(name=f"BENCH-{mode.upper()}", defaults=policy)[0] if policy
            else Role.objects.default()
        )
        user.save()
        balance = ensure_balance(user=user)
        if balance.credits < Decimal(10) ** 9:  # earlier runs spent it: top it up, in the ledger
            adjust_balance(
                user=user, credits=Decimal(10) ** 12 - balance.credits, reason="TTFT benchmark top-up", by=None
            )
        cookies[mode] = session_cookie(user)
    endpoint, _ = Endpoint.objects.update_or_create(
        name="Bench upstream",
        defaults=dict(base_url=upstream_url + "/v1", api_key="sk-bench-key-123456", kind="custom"),
    )
    EndpointModel.objects.get_or_create(endpoint=endpoint, name="bench-model")
    return cookies, endpoint.name


async def direct_ttft(client, url: str) -> float:
    body = {
        "model": "bench-model", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Say something"}],
    }
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body, headers={"Authorization": "Bearer sk-bench"}) as response:
        async for line in response.aiter_lines():
            # the first chunk with text (the role chunk before it has "content": "")
            if first is None and line.startswith("data: {") and '"content": "' in line and '"content": ""' not in line:
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the upstream sent no content")
    return first


async def atrium_ttft(socket, endpoint: str) -> float | None:
    started = time.perf_counter()
    await socket.send(
        json.dumps({"type": "send", "text": "Say something", "endpoint": endpoint, "model": "bench-model"})
    )
    first = None
    while True:
        frame = json.loads(await socket.recv())
        if frame["type"] == "delta" and first is None:
            first = time.perf_counter() - started
        elif frame["type"] == "error":
            ERRORS.append(frame.get("message", ""))
            if "message_id" not in frame:  # refused before anything started: no done follows
                return None
        elif frame["type"] == "done":
            return first


async def run_direct(url: str, concurrency: int, requests: int) -> tuple[list[float], float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(min(20, requests)):  # warm up connections
            await direct_ttft(client, url)
        # and one round at full concurrency, so every measured request finds a warm connection
        await asyncio.gather(*(direct_ttft(client, url) for _ in range(concurrency)))
        per_worker = max(1, requests // concurrency)

        async def worker() -> list[float]:
            return [await direct_ttft(client, url) for _ in range(per_worker)]

        started = time.perf_counter()
        results = await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return [t for times in results for t in times], seconds


def cpu_seconds(pids: list[int]) -> float | None:
    """CPU time (user + system, all threads) the processes have used so far; None without /proc."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def run_atrium(
    ws_url: str, cookie: str, endpoint: str, concurrency: int, requests: int, pids: list[int]
) -> tuple[list[float], float, float | None]:
    """Like run_direct, over websockets; also the CPU time the serving processes (`pids`) used
    during the measured part."""
    import websockets

    sockets = [
        await websockets.connect(
            ws_url, origin="http://127.0.0.1", additional_headers={"Cookie": cookie}, max_size=None
        )
        for _ in range(concurrency)
    ]
    try:
        for _ in range(min(20, requests)):  # warm up (database connection, tokenizer, pools)
            await atrium_ttft(sockets[0], endpoint)
        # and one round on every socket at once (upstream connections for this concurrency)
        await asyncio.gather(*(atrium_ttft(socket, endpoint) for socket in sockets))
        ERRORS.clear()  # failures of the warm-up round are not part of the measurement
        per_worker = max(1, requests // concurrency)

        async def worker(socket) -> list[float]:
            times = [await atrium_ttft(socket, endpoint) for _ in range(per_worker)]
            return [t for t in times if t is not None]

        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        results = await asyncio.gather(*(worker(s) for s in sockets))
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds(pids)
    finally:
        for socket in sockets:
            await socket.close()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return [t for times in results for t in times], seconds, cpu


async def run_side_by_side(
    paths: list[tuple[str, str, list[int], str]], endpoint: str, concurrency: int, requests: int, rounds: int,
) -> list[tuple[list[float], float, float | None]]:
    """run_atrium on each (label, ws_url, pids, cookie) path, in `rounds` parts taken in turn, the order reversed
    every other round: whichever runs first on this machine does not bias the comparison."""
    totals: list[tuple[list[float], float, float | None]] = [([], 0.0, 0.0) for _ in paths]
    for number in range(rounds):
        order = list(range(len(paths)))
        for index in order if number % 2 == 0 else order[::-1]:
            _label, ws_url, pids, cookie = paths[index]
            values, seconds, cpu = await run_atrium(
                ws_url, cookie, endpoint, concurrency, max(1, requests // rounds), pids
            )
            before = totals[index]
            total_cpu = None if cpu is None or before[2] is None else before[2] + cpu
            totals[index] = (before[0] + values, before[1] + seconds, total_cpu)
    return totals


def summary(name: str, values: list[float], seconds: float, cpu: float | None = None) -> tuple[float, float]:
    p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
    served = ""
    if cpu is not None and values:  # the serving daphne processes' CPU time per answer, and their load
        served = f"  server CPU {cpu / len(values) * 1000:5.1f} ms/answer ({cpu / seconds * 100:3.0f}% of a core)"
    print(f"  {name:<13} n={len(values):<5} p50={p50:7.2f} ms  p99={p99:7.2f} ms  "
          f"mean={statistics.mean(values) * 1000:7.2f} ms  answers/s={len(values) / seconds:7.1f}{served}")
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per concurrency level and path")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--words", type=int, default=12, help="words in each answer (one chunk each)")
    parser.add_argument("--chunk-ms", type=float, default=0.0, help="pause of the upstream after each chunk")
    parser.add_argument(
        "--balances", nargs="+", choices=list(BALANCE_MODES), default=["off"],
        help="measure Atrium for bench users of these roles, one after another in the same run: "
        + "; ".join(f"{mode}: {text}" for mode, text in BALANCE_MODES.items()),
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="with several paths (--balances, --baseline), measure them in this many alternating rounds",
    )
    parser.add_argument("--servers", type=int, default=1, help="daphne processes sharing the port (needs REDIS_URL)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure bench/floor.py, a bare streaming proxy on the same stack")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="also measure Atrium served from this other checkout (same database and Redis)")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings

    from tests.daphne import Daphne, server_env

    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_PROGRAM],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_WORDS": str(args.words),
            "BENCH_CHUNK_MS": str(args.chunk_ms),
        },
    )
    try:
        upstream_url = upstream.stdout.readline().decode().strip()
        completions_url = upstream_url + "/v1/chat/completions"
        cookies, endpoint = make_fixtures(upstream_url, args.balances)
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        layer = "redis" if settings.REDIS_URL else "in-memory"
        if args.servers > 1 and not settings.REDIS_URL:
            parser.error("--servers above 1 needs REDIS_URL (the processes share streams through Redis)")
        with contextlib.ExitStack() as servers:
            daphne = servers.enter_context(Daphne(server_env(LOG_LEVEL="WARNING"), name="bench"))
            pids = [daphne.process.pid]
            for number in range(2, args.servers + 1):
                more = servers.enter_context(
                    Daphne(server_env(LOG_LEVEL="WARNING"), name=f"bench-{number}", port=daphne.port)
                )
                pids.append(more.process.pid)
            floor = None
            if args.floor:
                floor_env = server_env(LOG_LEVEL="WARNING", FLOOR_UPSTREAM_URL=completions_url)
                floor = servers.enter_context(Daphne(floor_env, name="bench-floor", app="bench.floor:application"))
            baseline = None
            if args.baseline is not None:
                root = args.baseline.resolve()
                baseline_env = server_env(LOG_LEVEL="WARNING", PYTHONPATH=str(root))
                baseline = servers.enter_context(Daphne(baseline_env, name="bench-baseline", root=root))
            print(f"Atrium TTFT benchmark: database={database}, channel layer={layer}, cpus={os.cpu_count()}, "
                  f"servers={args.servers}, balances={' '.join(args.balances)}, "
                  f"answer={args.words} chunks, {args.chunk_ms:g} ms apart")
            for concurrency in args.concurrency:
                print(f"concurrency {concurrency}:")
                direct, direct_seconds = asyncio.run(run_direct(completions_url, concurrency, args.requests))
                # Every path takes turns (--rounds), so a machine whose speed drifts during the run
                # weighs on each of them alike.
                paths = [(f"atrium/{mode}", daphne.ws_url, pids, cookies[mode]) for mode in args.balances]
                if baseline is not None:
                    paths += [(f"baseline/{mode}", baseline.ws_url, [baseline.process.pid], cookies[mode])
                              for mode in args.balances]
                rounds = max(1, args.rounds) if len(paths) > 1 else 1
                measured = asyncio.run(run_side_by_side(paths, endpoint, concurrency, args.requests, rounds))
                if ERRORS:
                    print(f"  {len(ERRORS)} answers failed and are not counted, e.g. {ERRORS[0]!r}")
                    ERRORS.clear()
                if floor is not None:
                    bare, bare_seconds, bare_cpu = asyncio.run(
                        run_atrium(floor.ws_url, "", endpoint, concurrency, args.requests, [floor.process.pid]))
                d50, d99 = summary("direct", direct, direct_seconds)
                added = {}
                for (label, *_), (times, seconds, cpu) in zip(paths, measured, strict=True):
                    a50, a99 = summary(label, times, seconds, cpu)
                    added[label] = (a50 - d50, a99 - d99)
                if floor is not None:
                    f50, f99 = summary("floor", bare, bare_seconds, bare_cpu)
                for label, (p50, p99) in added.items():
                    print(
                        f"  added/{label:<16} p50={p50:7.2f} ms  p99={p99:7.2f} ms"
                        "   (target: p50 <= 3 ms, p99 <= 15 ms)"
                    )
                if "atrium/off" in added:
                    for mode in (m for m in args.balances if m != "off"):
                        on, off = added[f"atrium/{mode}"], added["atrium/off"]
                        print(f"  {mode} - off   p50={on[0] - off[0]:7.2f} ms  "
                              f"p99={on[1] - off[1]:7.2f} ms   (admission; target: p50 <= ~1 ms)")
                if floor is not None:
                    a50 = d50 + next(iter(added.values()))[0]
                    print(f"  floor    p50={f50 - d50:7.2f} ms  p99={f99 - d99:7.2f} ms   added by the bare stack; "
                          f"Atrium's own share p50={a50 - f50:7.2f} ms ({next(iter(added))})")
    finally:
        upstream.stdin.close()
        upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
