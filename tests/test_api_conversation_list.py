"""`GET /api/conversations` as the chat's sidebar needs it: archived conversations only when asked
for, temporary chats until they expire, each item with its bookmarks, the `bookmark` filter — and
cursor pages that stay exact under the filters. Tried by the owner, another user and anonymously."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from chat.models import Conversation, Tag

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def owner(make_user):
    return make_user("olga")


@pytest.fixture
def api(client, owner):
    client.force_login(owner)
    return client


def chat(user, title: str, *, minutes: int = 0, tags: tuple[str, ...] = (), **fields) -> Conversation:
    """A conversation last active `minutes` after START, with these bookmarks."""
    conversation = Conversation.objects.create(user=user, title=title, **fields)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=START + dt.timedelta(minutes=minutes))
    for name in tags:
        Tag.objects.get_or_create(user=user, name=name)[0].conversations.add(conversation)
    return conversation


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["items"]]


def every_page(api, query: str, limit: int) -> list[str]:
    seen, cursor = [], None
    while True:
        page = api.get(f"/api/conversations?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [item["title"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def test_archived_conversations_are_listed_only_when_asked_for_and_then_alone(api, owner):
    chat(owner, "Open", minutes=2)
    chat(owner, "Put away", minutes=1, archived=True)

    assert titles(api.get("/api/conversations")) == ["Open"]
    assert titles(api.get("/api/conversations?archived=true")) == ["Put away"]
    assert titles(api.get("/api/conversations?archived=false")) == ["Open"]


def test_temporary_chats_are_listed_until_they_expire(api, owner):
    now = timezone.now()
    chat(owner, "Fresh temporary", minutes=2, temporary=True, expires_at=now + dt.timedelta(hours=1))
    chat(owner, "Expired temporary", minutes=1, temporary=True, expires_at=now - dt.timedelta(minutes=1))
    started_long_ago = chat(owner, "Past the window", temporary=True)
    Conversation.objects.filter(pk=started_long_ago.pk).update(created_at=now - dt.timedelta(days=365))

    items = api.get("/api/conversations").json()["items"]

    assert [(c["title"], c["temporary"]) for c in items] == [("Fresh temporary", True)]


def test_each_item_names_its_bookmarks_and_the_bookmark_filter_keeps_those_carrying_it(api, owner):
    chat(owner, "Taxes", minutes=3, tags=("home", "money"))
    chat(owner, "Budget", minutes=2, tags=("money", "work"))
    chat(owner, "Untagged", minutes=1)

    items = api.get("/api/conversations").json()["items"]
    money = api.get("/api/conversations?tag=money")
    nothing = api.get("/api/conversations?tag=nowhere")

    assert [(c["title"], c["tags"], c["archived"]) for c in items] == [
        ("Taxes", ["home", "money"], False), ("Budget", ["money", "work"], False), ("Untagged", [], False),
    ]
    assert titles(money) == ["Taxes", "Budget"]
    assert titles(nothing) == []


def test_cursor_pages_under_filters_give_every_match_once_in_order(api, owner):
    for n in range(9):  # threes share a time (the id breaks the tie); every third one untagged
        chat(owner, f"Chat {n}", minutes=n // 3, tags=("work",) if n % 3 else (), archived=n == 4)

    walked = every_page(api, "&tag=work", limit=2)

    assert walked == titles(api.get("/api/conversations?tag=work&limit=100"))
    assert [set(walked[:2]), walked[2], set(walked[3:])] == [{"Chat 7", "Chat 8"}, "Chat 5", {"Chat 1", "Chat 2"}]
    assert every_page(api, "&tag=work&archived=true", limit=1) == ["Chat 4"]


def test_another_user_sees_none_of_the_owners_conversations_by_any_filter(client, owner, make_user):
    chat(owner, "Owner's taxes", tags=("money",))
    chat(owner, "Owner's archive", archived=True, tags=("money",))
    other = make_user("otto")
    chat(other, "Otto's own", tags=("money",))
    client.force_login(other)

    assert titles(client.get("/api/conversations?tag=money")) == ["Otto's own"]
    assert titles(client.get("/api/conversations?archived=true")) == []
    assert titles(client.get("/api/conversations")) == ["Otto's own"]


def test_anonymous_callers_get_401(client, owner):
    chat(owner, "Owner's taxes", tags=("money",))

    response = client.get("/api/conversations?tag=money")

    assert response.status_code == 401 and b"taxes" not in response.content
