"""Bookmarks (tags) on one's own conversations with counts, and archiving: owner, other user and
anonymous on every route; roles without bookmarks are refused."""
from __future__ import annotations

import pytest

from accounts.models import Role
from chat.models import Conversation, Tag


@pytest.fixture
def owner(make_user):
    return make_user("olga")


@pytest.fixture
def conversation(owner):
    return Conversation.objects.create(user=owner, title="Trip planning")


def put_tags(client, conversation, tags):
    return client.put(f"/api/library/conversations/{conversation.pk}/tags", {"tags": tags},
                      content_type="application/json")


def test_tagging_a_conversation_creates_the_bookmarks_and_counts_them(client, owner, conversation):
    other = Conversation.objects.create(user=owner, title="Budget")
    Conversation.objects.create(user=owner, title="Scratch", temporary=True).tags.add(
        Tag.objects.create(user=owner, name="travel"))
    client.force_login(owner)

    first = put_tags(client, conversation, ["travel", " 2026  plans "])
    put_tags(client, other, ["travel"])
    listed = client.get("/api/library/tags").json()

    assert first.status_code == 200
    assert first.json()["tags"] == ["2026 plans", "travel"]
    assert [(t["name"], t["count"]) for t in listed] == [("2026 plans", 1), ("travel", 2)]


def test_putting_an_empty_list_removes_every_bookmark_but_keeps_the_bookmarks(client, owner, conversation):
    client.force_login(owner)
    put_tags(client, conversation, ["travel"])

    response = put_tags(client, conversation, [])

    assert response.json()["tags"] == []
    assert [(t["name"], t["count"]) for t in client.get("/api/library/tags").json()] == [("travel", 0)]


def test_creating_and_deleting_a_bookmark(client, owner, conversation):
    client.force_login(owner)

    created = client.post("/api/library/tags", {"name": "ideas"}, content_type="application/json")
    deleted = client.delete(f"/api/library/tags/{created.json()['id']}")

    assert created.status_code == 201 and created.json() == {"id": created.json()["id"], "name": "ideas", "count": 0}
    assert deleted.status_code == 204
    assert not Tag.objects.exists()


def test_a_blank_bookmark_name_is_refused(client, owner):
    client.force_login(owner)

    response = client.post("/api/library/tags", {"name": "   "}, content_type="application/json")

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "A bookmark needs a name."


def test_another_user_can_neither_tag_nor_see_nor_delete_the_owners_bookmarks(client, owner, conversation, make_user):
    tag = Tag.objects.create(user=owner, name="private")
    client.force_login(make_user("otto"))

    assert put_tags(client, conversation, ["mine now"]).status_code == 404
    assert client.get("/api/library/tags").json() == []
    assert client.delete(f"/api/library/tags/{tag.pk}").status_code == 404
    assert Tag.objects.filter(user=owner).count() == 1
    assert not conversation.tags.exists()


def test_bookmark_routes_need_a_signed_in_user(client, owner, conversation):
    tag = Tag.objects.create(user=owner, name="private")

    assert client.get("/api/library/tags").status_code == 401
    assert client.post("/api/library/tags", {"name": "x"}, content_type="application/json").status_code == 401
    assert client.delete(f"/api/library/tags/{tag.pk}").status_code == 401
    assert put_tags(client, conversation, ["x"]).status_code == 401


def test_a_role_without_bookmarks_is_refused(client, make_user, db):
    role = Role.objects.create(name="Kiosk", can_use_bookmarks=False)
    client.force_login(make_user("kim", role=role))

    response = client.get("/api/library/tags")

    assert response.status_code == 403
    assert "bookmarks" in response.json()["error"]["message"]


def test_archiving_hides_nothing_from_search_and_keeps_the_recent_order(client, owner, conversation):
    before = Conversation.objects.get(pk=conversation.pk).updated_at
    client.force_login(owner)

    archived = client.put(f"/api/library/conversations/{conversation.pk}/archive", {"archived": True},
                          content_type="application/json")
    restored = client.put(f"/api/library/conversations/{conversation.pk}/archive", {"archived": False},
                          content_type="application/json")

    assert archived.json()["archived"] is True
    assert restored.json()["archived"] is False
    assert Conversation.objects.get(pk=conversation.pk).updated_at == before


def test_another_user_cannot_archive_and_anonymous_neither(client, conversation, make_user):
    url = f"/api/library/conversations/{conversation.pk}/archive"

    anonymous = client.put(url, {"archived": True}, content_type="application/json")
    client.force_login(make_user("otto"))
    other = client.put(url, {"archived": True}, content_type="application/json")

    assert (anonymous.status_code, other.status_code) == (401, 404)
    assert not Conversation.objects.get(pk=conversation.pk).archived
