"""The two entry points the chat turn, titles and the OpenAI-compatible gateway call.

`stream_chat` never raises for upstream or configuration problems: whatever text, reasoning and
tool-call deltas arrived are yielded, then at most one UsageReport, then exactly one final event —
`Finish(reason)` on success or `StreamError(message, status, retry_after, kind)` on failure.
Closing the iterator early (a user pressing stop) closes the upstream connection.

`list_models` never raises either: on any failure it returns the endpoint's listed models and logs why.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import aclosing
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

from endpoints import http
from endpoints.adapters import adapter_for
from endpoints.adapters.types import Call, ChatRequest, Event, StreamError
from endpoints.models import Endpoint
from endpoints.shaping import ConfigError, build_call, build_models_request

log = logging.getLogger(__name__)


async def stream_chat(
    *, endpoint: Endpoint, request: ChatRequest, user: Any, call: Call | None = None,
    on_sent: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Event]:
    """Stream one answer from `endpoint` as normalised events (see the module docstring). `call`:
    the request already built by `build_call` for exactly these arguments (the chat turn builds
    it on its database thread ahead of time); otherwise it is built here. `on_sent` is awaited once
    the request is on the wire, before the provider answers (not when it cannot be sent)."""
    try:
        if call is None:
            call = await sync_to_async(build_call, thread_sensitive=True)(endpoint=endpoint, request=request, user=user)
    except ConfigError as exc:
        yield StreamError(str(exc), kind="config")
        return
    except LookupError as exc:
        yield StreamError(f"{endpoint.name} is not usable: {exc}", kind="config")
        return
    async with aclosing(adapter_for(endpoint.provider).run(call, on_sent=on_sent)) as events:
        async for event in events:
            yield event


def _listed(endpoint: Endpoint) -> list[str]:
    return endpoint.listed_model_names()


async def list_models(*, endpoint: Endpoint, user: Any) -> list[str]:
    """The models users may pick for `endpoint`: fetched from `GET {baseURL}/models` when
    models.fetch is on (cached MODELS_CACHE_SECONDS), otherwise — or on any failure — the listed ones."""
    listed = await sync_to_async(_listed, thread_sensitive=True)(endpoint)
    if not endpoint.models_fetch or adapter_for(endpoint.provider).models_path is None:
        return listed  # models.fetch is off, or the protocol has no model list (Anthropic)
    try:
        models_request = await sync_to_async(build_models_request, thread_sensitive=True)(endpoint=endpoint, user=user)
    except ConfigError as exc:
        log.info("model list of %s not fetched: %s", endpoint.name, exc)
        return listed
    key = _cache_key(endpoint, user if models_request.per_user else None, models_request.url)
    cached = await cache.aget(key)
    if cached is not None:
        return list(cached)
    try:
        response = await http.request(
            "GET", models_request.url, vet=models_request.outbound_check, headers=models_request.headers,
            timeout=http.timeout(read=min(30.0, settings.UPSTREAM_READ_TIMEOUT)),
        )
    except httpx.HTTPError as exc:
        log.warning("model list of %s unavailable (%s: %s); using the listed models", endpoint.name, type(exc).__name__, exc)
        return listed
    if response.status_code != 200:
        log.warning("model list of %s unavailable (HTTP %s); using the listed models", endpoint.name, response.status_code)
        return listed
    try:
        models = parse_model_list(response.json())
    except ValueError as exc:
        log.warning("model list of %s unreadable (%s); using the listed models", endpoint.name, exc)
        return listed
    if not models:
        log.warning("model list of %s is empty; using the listed models", endpoint.name)
        return listed
    await cache.aset(key, models, settings.MODELS_CACHE_SECONDS)
    return models


def parse_model_list(payload: Any) -> list[str]:
    """OpenAI's `{"data": [{"id": …}]}`; also a bare list, or `{"models": […]}` (some gateways)."""
    items = payload
    if isinstance(payload, dict):
        items = payload.get("data", payload.get("models"))
    if not isinstance(items, list):
        raise ValueError("no 'data' list in the answer")
    names: list[str] = []
    for item in items:
        name = item.get("id") or item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


def _cache_key(endpoint: Endpoint, user: Any, url: str) -> str:
    # The endpoint's last change is part of the key, so an admin edit is seen at once.
    version = endpoint.updated_at.isoformat() if endpoint.updated_at else ""
    digest = hashlib.sha256(json.dumps([endpoint.pk, version, url]).encode()).hexdigest()[:24]
    owner = f":u{user.pk}" if user is not None else ""
    return f"endpoints:models:{endpoint.pk}{owner}:{digest}"
