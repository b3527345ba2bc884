"""Model lists (models.fetch): GET {baseURL}/models, cached, with a fallback to the listed models."""
from __future__ import annotations

import logging

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache

from endpoints.models import EndpointModel, Kind, Protocol, UserProviderKey

SECRET = "sk-models-secret-0123456789"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def models_for(endpoint, user=None) -> list[str]:
    from endpoints.services import list_models

    return async_to_sync(list_models)(endpoint=endpoint, user=user)


@pytest.fixture
def endpoint(make_endpoint, upstream):
    return make_endpoint("Router", base_url=upstream.base_url, api_key=SECRET, models_fetch=True,
                         models=("fallback-a", "fallback-b"))


def test_without_fetch_the_listed_models_are_used_and_nothing_is_asked(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url, models=("m1", "m2"))
    EndpointModel.objects.create(endpoint=endpoint, name="priced-only", listed=False)

    assert models_for(endpoint) == ["m1", "m2"]
    assert upstream.requests == []


def test_fetch_asks_the_upstream_with_the_key_and_headers(endpoint, upstream, make_user):
    endpoint.headers = {"X-Team": "blue"}
    endpoint.save()
    upstream.models(["gpt-x", "gpt-y", "gpt-x"])

    assert models_for(endpoint, make_user()) == ["gpt-x", "gpt-y"]
    request = upstream.last
    assert (request.method, request.path, request.query) == ("GET", "/v1/models", {})
    assert request.headers["authorization"] == f"Bearer {SECRET}" and request.headers["x-team"] == "blue"


def test_user_id_query_adds_the_user_id(endpoint, upstream, make_user):
    user = make_user()
    endpoint.user_id_query = True
    endpoint.save()

    models_for(endpoint, user)

    assert upstream.last.query == {"user": str(user.pk)}


def test_azure_model_lists_carry_api_key_and_api_version(make_endpoint, upstream):
    endpoint = make_endpoint(kind=Kind.AZURE_OPENAI, base_url=upstream.base_url, models_fetch=True,
                             query_params={"api-version": "2024-10-21"})

    models_for(endpoint)

    assert upstream.last.query == {"api-version": "2024-10-21"} and upstream.last.headers["api-key"]


def test_the_list_is_cached(endpoint, upstream, settings):
    settings.MODELS_CACHE_SECONDS = 60
    upstream.models(["one"])
    upstream.models(["two"])

    assert models_for(endpoint) == ["one"]
    assert models_for(endpoint) == ["one"]
    assert len(upstream.requests) == 1


def test_an_admin_edit_invalidates_the_cache(endpoint, upstream):
    upstream.models(["one"])
    upstream.models(["two"])
    models_for(endpoint)

    endpoint.headers = {"X-New": "1"}
    endpoint.save()

    assert models_for(endpoint) == ["two"]


def test_per_user_lists_are_cached_per_user(make_endpoint, upstream, make_user, settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    alice, bob = make_user(), make_user()
    endpoint = make_endpoint(base_url=upstream.base_url, api_key="user_provided", models_fetch=True)
    UserProviderKey.objects.create(user=alice, endpoint=endpoint, api_key="sk-alice")
    UserProviderKey.objects.create(user=bob, endpoint=endpoint, api_key="sk-bob")
    upstream.models(["alice-model"])
    upstream.models(["bob-model"])

    assert models_for(endpoint, alice) == ["alice-model"]
    assert models_for(endpoint, bob) == ["bob-model"]
    assert [r.headers["authorization"] for r in upstream.requests] == ["Bearer sk-alice", "Bearer sk-bob"]


@pytest.mark.parametrize("failure, logged", [
    ({"status": 500}, "HTTP 500"),
    ({"status": 401}, "HTTP 401"),
    ({"status": 200, "ids": []}, "empty"),
])
def test_failures_fall_back_to_the_listed_models_and_are_logged_without_secrets(
    endpoint, upstream, caplog, failure, logged
):
    upstream.models(**failure)

    with caplog.at_level(logging.WARNING, logger="endpoints"):
        assert models_for(endpoint) == ["fallback-a", "fallback-b"]

    assert "model list of Router" in caplog.text and logged in caplog.text
    assert SECRET not in caplog.text


def test_a_failure_is_not_cached(endpoint, upstream):
    upstream.models(status=503)
    upstream.models(["recovered"])

    assert models_for(endpoint) == ["fallback-a", "fallback-b"]
    assert models_for(endpoint) == ["recovered"]


@pytest.mark.parametrize("body", ["not json", {"object": "list"}])
def test_an_unreadable_answer_falls_back(endpoint, upstream, caplog, body):
    upstream.models(body=body)

    with caplog.at_level(logging.WARNING, logger="endpoints"):
        assert models_for(endpoint) == ["fallback-a", "fallback-b"]

    assert "model list of Router unavailable (unreadable answer" in caplog.text


def test_connection_refused_and_timeouts_fall_back(make_endpoint, upstream, settings, caplog):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    refused = make_endpoint(base_url=upstream.refused_url(), models_fetch=True, models=("a",))
    slow = make_endpoint(base_url=upstream.base_url, models_fetch=True, models=("b",))
    upstream.models(delay=2)

    with caplog.at_level(logging.WARNING, logger="endpoints"):
        assert models_for(refused) == ["a"]
        assert models_for(slow) == ["b"]

    assert "ConnectError" in caplog.text and "ReadTimeout" in caplog.text


def test_a_missing_user_key_falls_back_without_asking(make_endpoint, upstream, make_user):
    endpoint = make_endpoint(base_url=upstream.base_url, api_key="user_provided", models_fetch=True, models=("listed",))

    assert models_for(endpoint, make_user()) == ["listed"]
    assert upstream.requests == []


def test_anthropic_endpoints_never_fetch(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.url, provider=Protocol.ANTHROPIC, models=("claude-a",))
    endpoint.models_fetch = True  # the admin refuses this combination; the service ignores it too

    assert models_for(endpoint) == ["claude-a"]
    assert upstream.requests == []


def test_a_user_provided_private_url_is_never_asked_for_models(make_endpoint, upstream, make_user, settings, caplog):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False
    user = make_user()
    endpoint = make_endpoint("Mine", base_url="user_provided", models_fetch=True, models=("listed",))
    UserProviderKey.objects.create(user=user, endpoint=endpoint, base_url=upstream.base_url)

    with caplog.at_level(logging.INFO, logger="endpoints"):
        assert models_for(endpoint, user) == ["listed"]

    assert upstream.requests == [] and "private network address" in caplog.text
