"""Endpoint health for the admin: the connection test behind the endpoint page's button.

Failed calls are recorded by `endpoints.services.stream_chat` (UpstreamFailure); the dashboard
(billing/dashboard.py) sets them against the calls the ledger shows answered.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from endpoints import services
from endpoints.models import Endpoint

# The endpoint list's health column counts the failures of this last stretch.
HEALTH_WINDOW = dt.timedelta(hours=24)
SHOWN_MODELS = 20


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    message: str
    models: tuple[str, ...] = ()


def connection_test(endpoint: Endpoint, user: Any) -> ConnectionTest:
    """Ask `endpoint` for its model list now (not from the cache), with its auth and headers."""
    # A loop of its own in a thread of its own: under daphne, async_to_sync would run this on the
    # server's loop, whose pooled clients the chat uses (and which must not be closed here).
    try:
        with ThreadPoolExecutor(1) as pool:
            names = pool.submit(asyncio.run, _fetch(endpoint, user)).result()
    except services.ModelListUnavailable as exc:
        return ConnectionTest(False, f"{endpoint.name} did not answer with a model list: {exc}.")
    shown = ", ".join(names[:SHOWN_MODELS]) + (
        f", … ({len(names) - SHOWN_MODELS} more)" if len(names) > SHOWN_MODELS else ""
    )
    return ConnectionTest(True, f"{endpoint.name} answered with {len(names)} model(s): {shown}.", tuple(names))


async def _fetch(endpoint: Endpoint, user: Any) -> list[str]:
    from endpoints import http

    try:
        return await services.fetch_models(endpoint=endpoint, user=user, use_cache=False)
    finally:
        await http.aclose()  # this loop ends here
