"""Every /api/ route tried by the owner of what it names, by another user and anonymously: the
other user gets 404 (or, from a list, only their own things), the anonymous caller 401 — never
data. The routes come from the URL conf and the API's own schema, so a new route that is missing
from ROUTES below fails here until someone decides what it must do."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import Role
from portal.api import api
from tests.apidata import Owned, seed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

PUBLIC = {("GET", "/api/health")}
PRESET = {"title": "Mine", "endpoint": "Acme", "model": "test-model"}
EXPORT = Path(__file__).parent / "fixtures" / "library" / "librechat-flat.json"


@dataclass(frozen=True)
class Route:
    """What a route is sent (built from the owner's things), and what its owner gets back."""

    body: Any = None  # a function of Owned
    owner: tuple[int, ...] = (200,)
    session_only: bool = False
    # the path names something shared (an endpoint) and the route acts on the caller's own record of
    # it: another user acts on theirs, and the owner's is untouched (the owner's call comes after)
    callers_own: bool = False
    query: str = ""  # appended to the path
    upload: bool = False  # the body is a file (a LibreChat export), sent as a form


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/me"): Route(),
    ("GET", "/api/keys"): Route(),
    ("POST", "/api/keys"): Route(body=lambda o: {"name": "another"}, owner=(201,), session_only=True),
    ("DELETE", "/api/keys/{key_id}"): Route(owner=(204,)),
    ("GET", "/api/models"): Route(),
    ("GET", "/api/provider-keys"): Route(),
    ("PUT", "/api/provider-keys/{endpoint}"): Route(body=lambda o: {"api_key": "sk-replaced-key-0001"},
                                                     callers_own=True),
    ("DELETE", "/api/provider-keys/{endpoint}"): Route(owner=(204,), callers_own=True),
    ("GET", "/api/balance"): Route(),
    ("GET", "/api/transactions"): Route(),
    ("GET", "/api/usage"): Route(),
    ("GET", "/api/conversations"): Route(),
    ("GET", "/api/conversations/{conversation_id}"): Route(),
    ("PATCH", "/api/conversations/{conversation_id}"): Route(body=lambda o: {"title": "Renamed"}),
    ("DELETE", "/api/conversations/{conversation_id}"): Route(owner=(204,)),
    ("POST", "/api/conversations/{conversation_id}/stop"): Route(owner=(409,)),  # nothing is being written
    ("GET", "/api/messages/{message_id}"): Route(),
    ("POST", "/api/messages/{message_id}/fork"): Route(owner=(201,)),
    ("POST", "/api/chat/send"): Route(body=lambda o: {"text": "And now?", "conversation_id": str(o.conversation.pk),
                                                      "parent_id": str(o.first_answer.pk)}),
    ("POST", "/api/chat/edit"): Route(body=lambda o: {"text": "Edited", "message_id": str(o.first_question.pk)}),
    ("POST", "/api/chat/regenerate"): Route(body=lambda o: {"message_id": str(o.first_answer.pk)}),
    ("POST", "/api/chat/continue"): Route(body=lambda o: {"message_id": str(o.edited_answer.pk)}),
    # the conversation library
    ("GET", "/api/library/search"): Route(query="?q=plan"),
    ("POST", "/api/library/import"): Route(upload=True, owner=(201,)),
    ("GET", "/api/library/export"): Route(),
    ("GET", "/api/library/conversations/{conversation_id}/export"): Route(),
    ("PUT", "/api/library/conversations/{conversation_id}/archive"): Route(body=lambda o: {"archived": True}),
    ("PUT", "/api/library/conversations/{conversation_id}/tags"): Route(body=lambda o: {"tags": ["work"]}),
    ("GET", "/api/library/tags"): Route(),
    ("POST", "/api/library/tags"): Route(body=lambda o: {"name": "another"}, owner=(201,)),
    ("DELETE", "/api/library/tags/{tag_id}"): Route(owner=(204,)),
    ("POST", "/api/library/conversations/{conversation_id}/shares"): Route(body=lambda o: {}, owner=(201,)),
    ("GET", "/api/library/shares"): Route(),
    ("DELETE", "/api/library/shares/{share_id}"): Route(owner=(204,)),
    ("GET", "/api/library/presets"): Route(),
    ("POST", "/api/library/presets"): Route(body=lambda o: PRESET, owner=(201,)),
    ("PUT", "/api/library/presets/{preset_id}"): Route(body=lambda o: PRESET),
    ("DELETE", "/api/library/presets/{preset_id}"): Route(owner=(204,)),
    ("PUT", "/api/library/conversations/{conversation_id}/preset"): Route(body=lambda o: {"preset_id": o.preset_id}),
}


def _schema_routes() -> list[tuple[str, str]]:
    paths = api.get_openapi_schema()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def _urlconf_routes(patterns: list[Any] | None = None, prefix: str = "") -> list[str]:
    found: list[str] = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _urlconf_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/"):
            found.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return found


def test_every_api_route_in_the_url_conf_is_in_the_matrix():
    documented = {path for _, path in _schema_routes()}
    served = set(_urlconf_routes())
    # public by design: the schema, its page, and the root (which leads to the page)
    assert served - documented == {"/api/openapi.json", "/api/docs", "/api/"}
    assert set(_schema_routes()) - PUBLIC == set(ROUTES), "add the new route to ROUTES"


@pytest.fixture
def people(make_user, chat_endpoint, upstream):
    role = Role.objects.create(name="API", can_use_api=True)
    owner = make_user("olga", role=role)
    other = make_user("otto", role=role)
    endpoint = chat_endpoint("Acme", models=("test-model",))
    keyed = chat_endpoint("BYOK", api_key="user_provided")
    return seed(owner, endpoint, keyed), seed(other, endpoint, keyed, title="Otto's things")


async def _call(client: AsyncClient, method: str, path: str, route: Route, owned: Owned, **headers: str):
    url = path.format(**owned.params) + route.query
    body = route.body(owned) if route.body else None
    kwargs: dict[str, Any] = {"headers": headers} if headers else {}
    if route.upload:
        kwargs["data"] = {"file": SimpleUploadedFile(EXPORT.name, EXPORT.read_bytes(), "application/json")}
    elif body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return await getattr(client, method.lower())(url, **kwargs)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=[f"{m} {p}" for m, p in sorted(ROUTES)])
async def test_a_route_answers_its_owner_and_nobody_else(method, path, people, live_cleanup):
    owned, others = await sync_to_async(lambda: people)()
    route = ROUTES[(method, path)]

    anonymous = await _call(AsyncClient(), method, path, route, owned)
    other = AsyncClient()
    await other.aforce_login(others.user)
    as_other = await _call(other, method, path, route, owned)
    other_key = await _call(AsyncClient(), method, path, route, owned, authorization=f"Bearer {others.api_key}")
    owner = AsyncClient()
    await owner.aforce_login(owned.user)
    as_owner = await _call(owner, method, path, route, owned)

    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
    for response in (anonymous, as_other, other_key):
        body = response.content.decode()
        assert not [m for m in owned.markers if m in body], f"{response.status_code}: {body[:300]}"
    named = ("{" in path or path.startswith("/api/chat/")) and not route.callers_own
    if named:  # it names the owner's thing: to anyone else it does not exist
        assert as_other.status_code == 404 and as_other.json()["error"]["code"] == "not_found"
        assert other_key.status_code == 404
    else:
        assert as_other.status_code < 300
        if route.session_only:  # (so that a leaked key cannot mint more)
            assert other_key.status_code == 401
        else:  # (their own record, already deleted by the session's call: 404)
            assert other_key.status_code < 300 or method == "DELETE" and other_key.status_code == 404
    assert as_owner.status_code in route.owner, as_owner.content.decode()[:500]
