"""The shared outbound client: one per event loop, never used on another loop."""
from __future__ import annotations

import asyncio

from endpoints import http


def test_one_client_per_loop_and_a_fresh_one_on_the_next_loop(upstream):
    upstream.models(["a"])
    upstream.models(["b"])

    async def use() -> tuple[int, int, int]:
        first, second = http.client(), http.client()
        response = await first.get(upstream.base_url + "/models")
        return id(first), id(second), response.status_code

    first_loop = asyncio.run(use())
    second_loop = asyncio.run(use())  # the first loop is closed: its client must not be reused

    assert first_loop[0] == first_loop[1]
    assert first_loop[2] == second_loop[2] == 200


def test_aclose_forgets_the_loops_client(upstream):
    async def use() -> bool:
        before = http.client()
        await http.aclose()
        return http.client() is not before and before.is_closed

    assert asyncio.run(use())


def test_timeouts_come_from_settings_at_request_time(settings):
    settings.UPSTREAM_CONNECT_TIMEOUT = 3
    settings.UPSTREAM_READ_TIMEOUT = 45

    timeout = http.timeout()

    assert (timeout.connect, timeout.read) == (3.0, 45.0)
    assert http.timeout(read=5).read == 5.0
