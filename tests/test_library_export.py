"""Exporting conversations as Markdown, plain text, CSV and LibreChat-shaped JSON; a JSON export
imported again gives back the same tree."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from chat.models import Conversation, Message

SAMPLES = Path(__file__).parent / "fixtures" / "library"


@pytest.fixture
def owner(make_user):
    return make_user("olga")


@pytest.fixture
def imported(client, owner):
    """The sample LibreChat conversation (two answers to one question, a follow-up), imported."""
    client.force_login(owner)
    stream = io.BytesIO((SAMPLES / "librechat-flat.json").read_bytes())
    stream.name = "librechat.json"
    response = client.post("/api/library/import", {"file": stream})
    assert response.status_code == 201
    return Conversation.objects.get(pk=response.json()["conversations"][0])


def shape(conversation: Conversation) -> list[tuple]:
    messages = list(Message.objects.filter(conversation=conversation).order_by("created_at"))
    position = {m.pk: index for index, m in enumerate(messages)}
    return [(position.get(m.parent_id), m.role, m.text, m.model, m.created_at, m.unfinished) for m in messages]


def export(client, conversation: Conversation, fmt: str):
    return client.get(f"/api/library/conversations/{conversation.pk}/export", {"format": fmt})


def test_a_json_export_imported_again_gives_back_the_same_tree(client, owner, imported):
    exported = export(client, imported, "json")
    stream = io.BytesIO(exported.content)
    stream.name = "again.json"

    response = client.post("/api/library/import", {"file": stream})

    again = Conversation.objects.get(pk=response.json()["conversations"][0])
    assert again.pk != imported.pk
    assert shape(again) == shape(imported)
    assert (again.title, again.endpoint_name, again.model, again.system_prompt) == (
        imported.title, imported.endpoint_name, imported.model, imported.system_prompt)


def test_the_json_export_is_librechat_shaped_with_every_branch(client, imported):
    response = export(client, imported, "json")

    body = json.loads(response.content)
    assert response["Content-Disposition"] == 'attachment; filename="quarterly-report-outline.json"'
    assert body["conversationId"] == str(imported.pk) and body["recursive"] is False
    assert len(body["messages"]) == 4
    roots = [m for m in body["messages"] if m["parentMessageId"] == "00000000-0000-0000-0000-000000000000"]
    assert [m["isCreatedByUser"] for m in roots] == [True]


def test_markdown_and_text_show_the_branch_the_chat_shows(client, imported):
    markdown = export(client, imported, "md").content.decode()
    text = export(client, imported, "txt").content.decode()

    assert markdown.startswith("# Quarterly report outline\n")
    assert "Regenerated: Revenue, margins, hiring, outlook." in markdown
    assert "1. Revenue summary" not in markdown  # the older answer is another branch
    assert "Add a section on hiring plans." in markdown
    assert text.startswith("Quarterly report outline\n========================\n")
    assert "User:\nAdd a section on hiring plans." in text


def test_csv_has_a_row_per_message_and_neutralises_formulas(client, owner, imported):
    Message.objects.filter(conversation=imported, parent=None).update(text="=HYPERLINK(\"http://evil\")")

    rows = list(csv.DictReader(io.StringIO(export(client, imported, "csv").content.decode())))

    assert len(rows) == 4
    assert {r["role"] for r in rows} == {"user", "assistant"}
    assert rows[0]["text"].startswith("'=HYPERLINK")


def test_exporting_everything_gives_all_own_conversations_but_no_temporary_ones(client, owner, imported, make_user):
    Conversation.objects.create(user=owner, title="Scratch", temporary=True)
    Conversation.objects.create(user=make_user("otto"), title="Not mine")

    body = json.loads(client.get("/api/library/export", {"format": "json"}).content)

    assert [c["title"] for c in (body if isinstance(body, list) else [body])] == ["Quarterly report outline"]


def test_an_unknown_format_is_refused(client, imported):
    response = export(client, imported, "docx")

    assert response.status_code == 422
    assert "docx" in response.json()["error"]["message"]


def test_another_user_cannot_export_the_conversation(client, imported, make_user):
    client.force_login(make_user("otto"))

    assert export(client, imported, "md").status_code == 404


def test_exporting_needs_a_signed_in_user(client, imported):
    client.logout()

    assert export(client, imported, "md").status_code == 401
    assert client.get("/api/library/export").status_code == 401
