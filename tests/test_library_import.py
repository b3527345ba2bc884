"""Importing other tools' exports: LibreChat (flat and tree), ChatGPT (conversations.json, the
old zip and the sharded 2026 zip), Claude and Chatbot UI keep branches, roles, times, models and
titles; a broken or partly unknown file imports nothing and says what and where."""
from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from chat.models import Conversation, Message

SAMPLES = Path(__file__).parent / "fixtures" / "library"


def upload(client, name: str, body: bytes):
    return client.post("/api/library/import", {"file": _named(body, name)})


def _named(body: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(body)
    stream.name = name
    return stream


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def tree(conversation: Conversation) -> list[tuple[str | None, str, str]]:
    """(parent's text, role, text) of every message, oldest first: the shape a user sees."""
    messages = list(Message.objects.filter(conversation=conversation).order_by("created_at", "text"))
    texts = {m.pk: m.text for m in messages}
    return [(texts.get(m.parent_id), m.role, m.text) for m in messages]


@pytest.fixture
def owner(make_user):
    return make_user("olga")


def test_a_librechat_flat_export_keeps_its_branches_times_and_model(client, owner):
    client.force_login(owner)

    response = upload(client, "librechat-flat.json", sample("librechat-flat.json"))

    assert response.status_code == 201, response.content
    assert response.json()["messages"] == 4
    conversation = Conversation.objects.get(user=owner)
    assert conversation.title == "Quarterly report outline"
    assert (conversation.endpoint_name, conversation.model) == ("openAI", "gpt-4o")
    assert conversation.system_prompt == "You are a concise analyst."
    question = "Draft an outline for the quarterly report on revenue."
    assert tree(conversation) == [
        (None, "user", question),
        (question, "assistant", "1. Revenue summary\n2. Costs\n3. Outlook"),
        (question, "assistant", "Regenerated: Revenue, margins, hiring, outlook."),
        ("Regenerated: Revenue, margins, hiring, outlook.", "user", "Add a section on hiring plans."),
    ]
    first = Message.objects.get(conversation=conversation, parent=None)
    assert first.created_at == datetime(2025, 3, 4, 9, 15, 2, 123000, tzinfo=UTC)
    assert Message.objects.get(text__startswith="Regenerated").unfinished


def test_a_librechat_tree_export_keeps_both_answers_and_the_follow_up(client, owner):
    client.force_login(owner)

    assert upload(client, "tree.json", sample("librechat-tree.json")).status_code == 201

    question = "Why does the borrow checker reject this?"
    assert tree(Conversation.objects.get(user=owner)) == [
        (None, "user", question),
        (question, "assistant", "Because the reference outlives its owner."),
        ("Because the reference outlives its owner.", "user", "How do I fix it?"),
        (question, "assistant", "The value is dropped while still borrowed."),
    ]


def test_a_chatgpt_conversations_json_gives_every_conversation_with_regenerations(client, owner):
    client.force_login(owner)

    response = upload(client, "conversations.json", sample("chatgpt-conversations.json"))

    assert response.status_code == 201, response.content
    sourdough = Conversation.objects.get(user=owner, title="Sourdough starter")
    question = "How often should I feed my sourdough starter?"
    assert tree(sourdough) == [
        (None, "user", question),
        (question, "assistant", "Feed it once a day at room temperature."),
        (question, "assistant", "Twice a day if it lives on the counter."),
        ("Twice a day if it lives on the counter.", "user",
         "[image: file-service://file-9Xk2]\n\nIs this bubbly enough?"),
    ]
    assert sourdough.created_at == datetime.fromtimestamp(1717142400.123456, tz=UTC)
    assert Message.objects.get(text="Twice a day if it lives on the counter.").model == "gpt-4o-mini"
    japanese = Conversation.objects.get(user=owner, title="日本語の質問")
    thought = Message.objects.get(conversation=japanese, content__0__type="reasoning")
    assert thought.content[0]["text"] == "The user asks about Tokyo weather."
    assert Message.objects.get(conversation=japanese, text="東京は今日は晴れです。").parent == thought


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def test_an_old_chatgpt_zip_is_read_from_its_conversations_json(client, owner):
    client.force_login(owner)
    body = _zip({"conversations.json": sample("chatgpt-conversations.json"), "chat.html": b"<html></html>",
                 "user.json": b'{"id": "user-1"}'})

    assert upload(client, "export.zip", body).status_code == 201
    assert Conversation.objects.filter(user=owner).count() == 2


def test_a_2026_chatgpt_zip_is_read_shard_by_shard_as_its_manifest_lists_them(client, owner):
    client.force_login(owner)
    first, second = json.loads(sample("chatgpt-conversations.json"))
    manifest = {"export_version": 2, "conversations": [
        {"path": "conversations-000.json", "count": 1}, {"path": "conversations-001.json", "count": 1}]}
    body = _zip({"export_manifest.json": json.dumps(manifest).encode(),
                 "conversations-000.json": json.dumps([first]).encode(),
                 "conversations-001.json": json.dumps([second], ensure_ascii=False).encode()})

    response = upload(client, "export.zip", body)

    assert response.status_code == 201, response.content
    assert set(Conversation.objects.filter(user=owner).values_list("title", flat=True)) == {
        "Sourdough starter", "日本語の質問"}


def test_a_zip_whose_manifest_names_a_missing_shard_imports_nothing(client, owner):
    client.force_login(owner)
    manifest = {"conversations": ["conversations-000.json", "conversations-001.json"]}
    body = _zip({"export_manifest.json": json.dumps(manifest).encode(),
                 "conversations-000.json": sample("chatgpt-conversations.json")})

    response = upload(client, "export.zip", body)

    assert response.status_code == 422
    assert "conversations-001.json" in response.json()["error"]["message"]
    assert not Conversation.objects.exists()


def test_a_claude_export_keeps_thinking_apart_from_the_answer(client, owner):
    client.force_login(owner)

    assert upload(client, "conversations.json", sample("claude-conversations.json")).status_code == 201

    conversation = Conversation.objects.get(user=owner)
    assert conversation.title == "Postgres vacuum tuning"
    question = "When should autovacuum run on a big table?"
    assert tree(conversation) == [
        (None, "user", question),
        (question, "assistant", "Lower autovacuum_vacuum_scale_factor for large tables."),
        ("Lower autovacuum_vacuum_scale_factor for large tables.", "user", "And for small ones?"),
    ]
    answer = Message.objects.get(role="assistant")
    assert answer.content[0] == {"type": "reasoning", "text": "Consider scale factor versus threshold."}


def test_a_chatbot_ui_export_gives_each_conversation_with_its_model_and_prompt(client, owner):
    client.force_login(owner)

    assert upload(client, "chatbot_ui_history.json", sample("chatbot-ui.json")).status_code == 201

    regex = Conversation.objects.get(user=owner, title="Regex help")
    assert (regex.model, regex.params) == ("gpt-3.5-turbo", {"temperature": 0.5})
    assert regex.system_prompt.startswith("You are ChatGPT")
    assert tree(regex) == [
        (None, "user", "Match an ISO date with a regex"),
        ("Match an ISO date with a regex", "assistant", r"Use \d{4}-\d{2}-\d{2}."),
    ]
    assert Conversation.objects.filter(user=owner).count() == 2


@pytest.mark.parametrize(("body", "says"), [
    (b'[{"title": "x", "mapping": {"r": {"id": "r", "message": null, "parent": null, "children": []}}}, {"chat_',
     "not valid JSON"),
    (b"hello", "not a JSON export"),
    (b'{"name": "something else"}', "not a LibreChat or Chatbot UI export"),
])
def test_a_malformed_file_imports_nothing_and_says_why(client, owner, body, says):
    client.force_login(owner)

    response = upload(client, "bad.json", body)

    assert response.status_code == 422
    assert says in response.json()["error"]["message"]
    assert not Conversation.objects.exists()


def test_an_unknown_content_type_late_in_the_file_rolls_back_the_conversations_before_it(client, owner):
    client.force_login(owner)
    conversations = json.loads(sample("chatgpt-conversations.json"))
    conversations[1]["mapping"]["ans"]["message"]["content"]["content_type"] = "hologram"

    response = upload(client, "conversations.json", json.dumps(conversations).encode())

    assert response.status_code == 422
    detail = response.json()["error"]["message"]
    assert "conversation 2" in detail and "node ans" in detail and "'hologram'" in detail
    assert not Conversation.objects.exists()


def test_a_message_answering_one_that_is_not_in_the_file_is_refused(client, owner):
    client.force_login(owner)
    export = json.loads(sample("librechat-flat.json"))
    export["messages"][1]["parentMessageId"] = "not-there"

    response = upload(client, "librechat.json", json.dumps(export).encode())

    assert response.status_code == 422
    assert "answers not-there, which is not in the file" in response.json()["error"]["message"]


def test_a_file_over_the_import_limit_is_refused_before_it_is_read(client, owner, settings):
    settings.CHAT_IMPORT_MAX_BYTES = 1024
    client.force_login(owner)

    response = upload(client, "conversations.json", sample("chatgpt-conversations.json"))

    assert response.status_code == 413
    assert not Conversation.objects.exists()


def test_a_large_chatgpt_export_is_read_conversation_by_conversation(client, owner, tmp_path):
    """Five thousand conversations (~6 MB) go through the streaming reader in one request."""
    template = json.loads(sample("chatgpt-conversations.json"))[0]
    path = tmp_path / "conversations.json"
    with path.open("w") as out:
        out.write("[")
        for index in range(5000):
            out.write(("," if index else "") + json.dumps({**template, "title": f"Bread {index}"}))
        out.write("]")
    client.force_login(owner)

    with path.open("rb") as stream:
        response = client.post("/api/library/import", {"file": stream})

    assert response.status_code == 201, response.content[:300]
    assert Conversation.objects.filter(user=owner).count() == 5000


def test_importing_needs_a_signed_in_user(client, db):
    response = upload(client, "conversations.json", sample("chatgpt-conversations.json"))

    assert response.status_code == 401
    assert not Conversation.objects.exists()


def test_imported_conversations_belong_to_the_importer_only(client, owner, make_user):
    other = make_user("otto")
    client.force_login(other)

    upload(client, "conversations.json", sample("claude-conversations.json"))

    assert not Conversation.objects.filter(user=owner).exists()
    assert Conversation.objects.get().user == other


def test_an_admin_imports_many_users_files_with_one_command(owner, make_user, tmp_path):
    other = make_user("otto")
    (tmp_path / "olga.json").write_bytes(sample("librechat-flat.json"))
    (tmp_path / "otto.zip").write_bytes(_zip({"conversations.json": sample("claude-conversations.json")}))
    out = io.StringIO()

    call_command("import_conversations", f"olga={tmp_path / 'olga.json'}", f"otto={tmp_path / 'otto.zip'}", stdout=out)

    assert Conversation.objects.get(user=owner).title == "Quarterly report outline"
    assert Conversation.objects.get(user=other).title == "Postgres vacuum tuning"
    assert "olga: 1 conversations, 4 messages" in out.getvalue()
