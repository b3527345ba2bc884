"""The two entry points the chat turn, titles and the OpenAI-compatible gateway call.

`stream_chat` never raises for upstream or configuration problems: whatever text, reasoning and
tool-call deltas arrived are yielded, with UsageReports (each the usage reported so far, replacing
any earlier one: Anthropic reports the prompt's counts as the answer starts, all of them at the
end), then exactly one final event —
`Finish(reason)` on success or `StreamError(message, status, retry_after, kind)` on failure.
Closing the iterator early (a user pressing stop) closes the upstream connection.

`list_models` never raises either: on any failure it returns the endpoint's listed models and logs why.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError

from endpoints import http
from endpoints.adapters import adapter_for
from endpoints.adapters.types import Call, ChatRequest, Event, StreamError
from endpoints.models import Endpoint, UpstreamFailure, UserProviderKey
from endpoints.selectors import keyed_endpoints
from endpoints.shaping import ConfigError, build_call, build_models_request

log = logging.getLogger(__name__)


async def stream_chat(
    *, endpoint: Endpoint, request: ChatRequest, user: Any, call: Call | None = None,
    on_sent: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[Event, None]:
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
            if isinstance(event, StreamError):
                await record_failure(endpoint=endpoint, model=call.model, error=event)
            yield event


async def record_failure(*, endpoint: Endpoint, model: str, error: StreamError) -> None:
    """Endpoint health: keep the failed call (the error path only; a failure to record it is
    logged, never shown to the user in place of the provider's error)."""
    try:
        await UpstreamFailure.objects.acreate(
            endpoint_id=endpoint.pk, model=model[:200], kind=error.kind[:20], status=error.status,
            message=error.message[:1000],
        )
    except DatabaseError:
        log.exception("could not record the failed call to %s", endpoint.name)


def _listed(endpoint: Endpoint) -> list[str]:
    return endpoint.listed_model_names()


async def list_models(*, endpoint: Endpoint, user: Any) -> list[str]:
    """The models users may pick for `endpoint`: fetched from `GET {baseURL}/models` when
    models.fetch is on (cached MODELS_CACHE_SECONDS), otherwise — or on any failure — the listed ones."""
    listed = await sync_to_async(_listed, thread_sensitive=True)(endpoint)
    if not endpoint.models_fetch or adapter_for(endpoint.provider).models_path is None:
        return listed  # models.fetch is off, or the protocol has no model list (Anthropic)
    try:
        return await fetch_models(endpoint=endpoint, user=user)
    except ModelListUnavailable as exc:
        log.warning("model list of %s unavailable (%s); using the listed models", endpoint.name, exc)
        return listed


class ModelListUnavailable(Exception):
    """The endpoint's model list could not be fetched; the message says why (never a secret)."""


async def fetch_models(*, endpoint: Endpoint, user: Any, use_cache: bool = True) -> list[str]:
    """`GET {baseURL}/models` with the endpoint's auth and headers: the model names it answers
    with (cached MODELS_CACHE_SECONDS unless `use_cache` is off). Raises ModelListUnavailable."""
    if adapter_for(endpoint.provider).models_path is None:
        raise ModelListUnavailable("this wire protocol has no model list")
    try:
        models_request = await sync_to_async(build_models_request, thread_sensitive=True)(endpoint=endpoint, user=user)
    except ConfigError as exc:
        raise ModelListUnavailable(str(exc)) from exc
    key = _cache_key(endpoint, user if models_request.per_user else None, models_request.url)
    cached = await cache.aget(key) if use_cache else None
    if cached is not None:
        return list(cached)
    try:
        response = await http.request(
            "GET", models_request.url, vet=models_request.outbound_check, headers=models_request.headers,
            timeout=http.timeout(read=min(30.0, settings.UPSTREAM_READ_TIMEOUT)),
        )
    except httpx.HTTPError as exc:
        # the reason in parentheses: e.g. the vetting of a user-provided address says why it refused
        reason = f" ({exc})" if str(exc) else ""
        raise ModelListUnavailable(f"{type(exc).__name__}: the server could not be reached{reason}") from exc
    if response.status_code != 200:
        raise ModelListUnavailable(f"HTTP {response.status_code}")
    try:
        models = parse_model_list(response.json())
    except ValueError as exc:
        raise ModelListUnavailable(f"unreadable answer: {exc}") from exc
    if not models:
        raise ModelListUnavailable("the list is empty")
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


# --- the user's own provider keys ---------------------------------------------------------------


def provider_key_set(
    *, user: Any, endpoint_name: str, api_key: str, base_url: str, expires_at: Any = None
) -> UserProviderKey:
    """Store (or replace) `user`'s key for an endpoint that takes one. Raises Endpoint.DoesNotExist
    for endpoints the user may not use or that take no key of theirs, ValueError for a missing part."""
    endpoint = next((e for e in keyed_endpoints(user=user) if e.name == endpoint_name), None)
    if endpoint is None:
        raise Endpoint.DoesNotExist(endpoint_name)
    if endpoint.user_provides_key and not api_key:
        raise ValueError(f"{endpoint.name} needs your API key.")
    if endpoint.user_provides_base_url and not base_url:
        raise ValueError(f"{endpoint.name} needs your base URL.")
    key, _ = UserProviderKey.objects.update_or_create(
        user=user, endpoint=endpoint,
        defaults={"api_key": api_key if endpoint.user_provides_key else "",
                  "base_url": base_url if endpoint.user_provides_base_url else "", "expires_at": expires_at},
    )
    return key


def provider_key_delete(*, user: Any, endpoint_name: str) -> bool:
    """Forget `user`'s key for the endpoint; False when there was none."""
    deleted, _ = UserProviderKey.objects.filter(user=user, endpoint__name=endpoint_name).delete()
    return deleted > 0
