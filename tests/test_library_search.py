"""Search over one's own messages: ranked hits with highlighted, escaped snippets, the search box's
syntax, Chinese and Japanese, filters; temporary chats never show, archived ones do. Runs on the
embedded SQLite (FTS5) and, with DATABASE_URL, on PostgreSQL (tsvector, trigram)."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from chat.models import Conversation, Message, Tag


@pytest.fixture
def owner(make_user):
    return make_user("olga")


@pytest.fixture
def say(owner):
    def say(text: str, *, user=None, title: str = "Chat", role: str = "user", when: datetime | None = None,
            **conversation_fields) -> Message:
        user = user or owner
        conversation = Conversation.objects.create(user=user, title=title, **conversation_fields)
        message = Message.objects.create(conversation=conversation, user=user, role=role, text=text,
                                         content=[{"type": "text", "text": text}])
        if when:
            Message.objects.filter(pk=message.pk).update(created_at=when)
        return message

    return say


def search(client, q: str, **filters):
    response = client.get("/api/library/search", {"q": q, **filters})
    assert response.status_code == 200, response.content
    return response.json()


def texts(hits) -> set[str]:
    return {Message.objects.get(pk=h["message_id"]).text for h in hits}


def test_the_owner_finds_a_message_with_the_match_highlighted(client, owner, say):
    message = say("The kubernetes cluster restarted at midnight.", title="Ops notes")
    say("Lunch plans for Friday.")
    client.force_login(owner)

    [hit] = search(client, "kubernetes")

    assert hit["conversation_id"] == str(message.conversation_id)
    assert hit["message_id"] == str(message.pk)
    assert hit["conversation_title"] == "Ops notes"
    assert "<mark>kubernetes</mark>" in hit["snippet"]


def test_another_users_messages_never_appear(client, owner, say, make_user):
    say("Our secret merger codename is bluebird.")
    client.force_login(make_user("otto"))

    assert search(client, "bluebird") == []


def test_searching_needs_a_signed_in_user(client, db):
    assert client.get("/api/library/search", {"q": "anything"}).status_code == 401


def test_a_snippet_never_carries_the_messages_markup(client, owner, say):
    say('<img src=x onerror=alert(1)> payload <script>alert("pwned")</script>')
    client.force_login(owner)

    [hit] = search(client, "payload")

    assert "<mark>payload</mark>" in hit["snippet"]
    assert "<" not in re.sub(r"</?mark>", "", hit["snippet"])


def test_quotes_or_and_minus_work_as_in_a_search_box(client, owner, say):
    say("red apple pie")
    say("apple red wine")
    say("green pear tart")
    client.force_login(owner)

    assert texts(search(client, '"red apple"')) == {"red apple pie"}
    assert texts(search(client, "apple -pie")) == {"apple red wine"}
    assert texts(search(client, "pie or tart")) == {"red apple pie", "green pear tart"}
    assert texts(search(client, "apple red")) == {"red apple pie", "apple red wine"}


def test_chinese_and_japanese_are_found_inside_sentences(client, owner, say):
    say("我们明天讨论数据库迁移的计划。")
    say("東京は今日は晴れです。")
    say("Plain English here.")
    client.force_login(owner)

    [chinese] = search(client, "数据库迁移")
    [japanese] = search(client, "晴れ")

    assert "<mark>数据库迁移</mark>" in chinese["snippet"]
    assert "<mark>晴れ</mark>" in japanese["snippet"]


def test_temporary_chats_never_appear_and_archived_ones_do(client, owner, say):
    say("quarterly forecast draft", temporary=True)
    archived = say("quarterly forecast final", archived=True)
    client.force_login(owner)

    assert [h["message_id"] for h in search(client, "quarterly")] == [str(archived.pk)]


def test_filters_narrow_by_date_endpoint_model_and_bookmark(client, owner, say):
    old = say("invoice from march", when=datetime(2025, 3, 1, tzinfo=UTC), endpoint_name="openAI", model="gpt-4o")
    new = say("invoice from june", when=datetime(2025, 6, 1, tzinfo=UTC), endpoint_name="anthropic",
              model="claude-sonnet-4")
    Tag.objects.create(user=owner, name="finance").conversations.add(new.conversation)
    client.force_login(owner)

    assert texts(search(client, "invoice", start="2025-05-01T00:00:00Z")) == {new.text}
    assert texts(search(client, "invoice", end="2025-05-01T00:00:00Z")) == {old.text}
    assert texts(search(client, "invoice", endpoint="openAI")) == {old.text}
    assert texts(search(client, "invoice", model="claude-sonnet-4")) == {new.text}
    assert texts(search(client, "invoice", tag="finance")) == {new.text}


def test_an_edited_message_is_found_by_its_new_words_only(client, owner, say):
    message = say("first draft wording")
    message.set_text("second version wording")
    message.save()
    client.force_login(owner)

    assert search(client, "draft") == []
    assert texts(search(client, "version")) == {"second version wording"}


def test_a_deleted_conversation_leaves_nothing_to_find(client, owner, say):
    say("ephemeral words").conversation.delete()
    client.force_login(owner)

    assert search(client, "ephemeral") == []


def test_a_query_of_only_exclusions_or_operators_finds_nothing_rather_than_failing(client, owner, say):
    say("alpha beta")
    client.force_login(owner)

    assert search(client, "-alpha") == []
    assert search(client, 'NEAR( "') == []
