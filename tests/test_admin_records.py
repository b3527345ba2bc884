"""Conversations and messages are the users' records: an admin reads them and may delete a
conversation (audit-logged), but cannot add or change one."""
from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from chat.models import Conversation, Message


@pytest.fixture
def conversation(make_user, make_endpoint):
    user = make_user("alice")
    endpoint = make_endpoint("Groq", models=("llama3-8b",))
    convo = Conversation.objects.create(user=user, title="Quarterly plan", endpoint=endpoint, model="llama3-8b")
    Message.objects.create(
        conversation=convo, user=user, role="user", text="hi", content=[{"type": "text", "text": "hi"}]
    )
    return convo


def test_an_admin_reads_a_conversation_but_is_offered_no_way_to_change_it(admin_client, conversation):
    changelist = admin_client.get(reverse("admin:chat_conversation_changelist")).content.decode()
    page = admin_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk])).content.decode()

    assert "Quarterly plan" in changelist and "Add conversation" not in changelist
    assert "Quarterly plan" in page and 'name="_save"' not in page and 'name="title"' not in page
    assert admin_client.get(reverse("admin:chat_conversation_add")).status_code == 403


def test_a_posted_change_to_a_conversation_or_message_is_refused(admin_client, conversation):
    message = conversation.messages.get()
    convo_url = reverse("admin:chat_conversation_change", args=[conversation.pk])
    message_url = reverse("admin:chat_message_change", args=[message.pk])

    assert admin_client.post(convo_url, {"title": "Rewritten", "user": conversation.user_id}).status_code == 403
    assert admin_client.post(message_url, {"text": "Rewritten", "role": "user"}).status_code == 403
    conversation.refresh_from_db()
    message.refresh_from_db()
    assert conversation.title == "Quarterly plan" and message.text == "hi"


def test_messages_cannot_be_deleted_one_by_one(admin_client, conversation):
    message = conversation.messages.get()

    response = admin_client.post(reverse("admin:chat_message_delete", args=[message.pk]), {"post": "yes"})

    assert response.status_code == 403 and Message.objects.filter(pk=message.pk).exists()


def test_deleting_a_conversation_is_allowed_and_recorded_in_the_audit_log(admin_client, admin_user, conversation):
    response = admin_client.post(reverse("admin:chat_conversation_delete", args=[conversation.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Conversation.objects.exists() and not Message.objects.exists()
    entry = LogEntry.objects.get(action=LogEntry.Action.DELETE, content_type__model="conversation")
    assert entry.actor == admin_user and entry.object_repr == "Quarterly plan"
