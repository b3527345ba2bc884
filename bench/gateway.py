"""Latency the gateway (/v1/chat/completions) adds over calling the upstream directly.

    python bench/gateway.py [--requests 300] [--concurrency 1 50] [--words 12] [--profile 200]

Starts the loopback upstream (tests/upstream.py, OpenAI Chat Completions) in its own process, a
real daphne running Atrium, and a daphne running the floor (bench/gateway_floor.py: a bare
pass-through on the same stack — Django's ASGI handler and middleware, Atrium's pooled httpx
client — with no key, checks, turn, parsing or billing). Then, at each concurrency, for whole
answers (time to the complete response) and streams (time to the first content chunk), it sends
the same request along three paths in turn — direct to the upstream, through the floor, through
Atrium's gateway with a personal API key — and prints p50/p99 of each and what the floor and
Atrium add over direct. Atrium's own share is the difference between the two.

The caller's role has API access and no balance (admission is measured by bench/ttft.py
--balances). The database and Redis are those of the environment (DATABASE_URL / REDIS_URL);
with neither, the embedded default in a temporary directory.

`--profile N` then runs N whole answers through the gateway in this process (the ASGI app over
httpx's ASGITransport, the upstream as above) under cProfile, on the event loop and on the
chat's database thread, and prints the functions with the most time of their own in each.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ttft import UPSTREAM_PROGRAM, percentile, setup_django  # noqa: E402


def make_fixtures(upstream_url: str) -> str:
    """The bench endpoint, a user whose role has API access, and a fresh API key for it."""
    from accounts.models import Role, User
    from accounts.services import api_key_create
    from endpoints.models import Endpoint, EndpointModel

    role, _ = Role.objects.update_or_create(
        name="BENCH-GATEWAY", defaults=dict(can_use_api=True, balance_enabled=False)
    )
    user, _ = User.objects.get_or_create(username="bench-gateway", defaults={"email": "bench-gateway@example.com"})
    user.role = role
    user.save()
    endpoint, _ = Endpoint.objects.update_or_create(
        name="Bench upstream",
        defaults=dict(base_url=upstream_url + "/v1", api_key="sk-bench-key-123456", kind="custom"),
    )
    EndpointModel.objects.get_or_create(endpoint=endpoint, name="bench-model")
    return api_key_create(user=user, name="gateway benchmark").key


def body(stream: bool) -> dict:
    ask = {"model": "bench-model", "messages": [{"role": "user", "content": "Say something"}]}
    return {**ask, "stream": True, "stream_options": {"include_usage": True}} if stream else ask


def _has_content(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


async def timed(client, url: str, headers: dict, stream: bool) -> float:
    """Whole: seconds to the complete response. Stream: seconds to the first content chunk (the
    stream is read to its end all the same)."""
    started = time.perf_counter()
    if not stream:
        response = await client.post(url, json=body(False), headers=headers)
        response.raise_for_status()
        return time.perf_counter() - started
    first = None
    async with client.stream("POST", url, json=body(True), headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and _has_content(line):
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{url} streamed no content")
    return first


async def measure(url: str, headers: dict, *, stream: bool, concurrency: int, requests: int) -> list[float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        for _ in range(min(20, requests)):  # warm up: connections, pools, caches
            await timed(client, url, headers, stream)
        await asyncio.gather(*(timed(client, url, headers, stream) for _ in range(concurrency)))
        per_worker = max(1, requests // concurrency)

        async def worker() -> list[float]:
            return [await timed(client, url, headers, stream) for _ in range(per_worker)]

        results = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [t * 1000 for times in results for t in times]


def profile(upstream_url: str, key: str, requests: int) -> None:
    import cProfile
    import pstats

    import httpx

    from chat.db import _executor
    from portal.asgi import application

    async def run() -> None:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            headers = {"Authorization": f"Bearer {key}"}
            for _ in range(20):
                await timed(client, "/v1/chat/completions", headers, False)
            profiler, on_db_thread = cProfile.Profile(), cProfile.Profile()
            database = _executor()  # (a profiler sees its own thread: one on the database thread too)
            database.submit(on_db_thread.enable).result()
            profiler.enable()
            for _ in range(requests):
                await timed(client, "/v1/chat/completions", headers, False)
            profiler.disable()
            database.submit(on_db_thread.disable).result()
        for label, which in (("the event loop", profiler), ("the database thread", on_db_thread)):
            print(f"\nprofile of {label}: {requests} whole answers through the gateway in-process, by own time")
            pstats.Stats(which).sort_stats("tottime").print_stats(20)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="measured requests per path and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--words", type=int, default=12, help="chunks in each answer")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="then profile N gateway calls")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    from tests.daphne import Daphne, server_env

    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_PROGRAM], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BENCH_WORDS": str(args.words), "BENCH_CHUNK_MS": "0"},
    )
    try:
        upstream_url = upstream.stdout.readline().decode().strip()
        direct_url = upstream_url + "/v1/chat/completions"
        key = make_fixtures(upstream_url)
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print(f"Gateway benchmark: database={database}, redis={'yes' if settings.REDIS_URL else 'no'}, "
              f"cpus={os.cpu_count()}, answer={args.words} chunks, {args.requests} requests per path")
        with Daphne(server_env(LOG_LEVEL="WARNING"), name="bench-gateway") as atrium, Daphne(
            server_env(LOG_LEVEL="WARNING", FLOOR_UPSTREAM_URL=direct_url), name="bench-gateway-floor",
            app="bench.gateway_floor:application",
        ) as floor:
            paths = [
                ("direct", direct_url, {"Authorization": "Bearer sk-bench"}),
                ("floor", f"http://127.0.0.1:{floor.port}/floor/v1/chat/completions", {}),
                ("atrium", f"http://127.0.0.1:{atrium.port}/v1/chat/completions", {"Authorization": f"Bearer {key}"}),
            ]
            for concurrency in args.concurrency:
                for stream in (False, True):
                    report(paths, stream=stream, concurrency=concurrency, requests=args.requests)
        if args.profile:
            profile(upstream_url, key, args.profile)
    finally:
        upstream.stdin.close()
        upstream.wait(timeout=10)


def report(paths: list, *, stream: bool, concurrency: int, requests: int) -> None:
    what = "time to first token (stream)" if stream else "whole answer (non-streaming)"
    print(f"concurrency {concurrency}, {what}:")
    figures = {}
    for label, url, headers in paths:
        times = asyncio.run(measure(url, headers, stream=stream, concurrency=concurrency, requests=requests))
        figures[label] = (percentile(times, 50), percentile(times, 99))
        print(f"  {label:<7} p50={figures[label][0]:8.2f} ms  p99={figures[label][1]:8.2f} ms  (n={len(times)})")
    d50, d99 = figures["direct"]
    f50, f99 = figures["floor"][0] - d50, figures["floor"][1] - d99
    a50, a99 = figures["atrium"][0] - d50, figures["atrium"][1] - d99
    print(f"  added by the floor   p50={f50:8.2f} ms  p99={f99:8.2f} ms")
    print(f"  added by Atrium      p50={a50:8.2f} ms  p99={a99:8.2f} ms   "
          f"(Atrium's own share p50={a50 - f50:.2f} ms; {a50 / f50 if f50 > 0 else float('nan'):.1f}x the floor's)")


if __name__ == "__main__":
    main()
