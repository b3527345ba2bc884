"""Share links: a public, read-only snapshot of a conversation up to a chosen message, with nothing
of the owner on it; revocable, optionally expiring; only for roles allowed to share."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from chat.models import Conversation, Message, ShareLink


@pytest.fixture
def owner(make_user):
    return make_user("olga", email="olga.private@example.com")


@pytest.fixture
def conversation(owner):
    """Question → answer → follow-up → second answer."""
    conversation = Conversation.objects.create(user=owner, title="Garden plans")
    parent = None
    for role, text in [("user", "Which tomatoes grow in shade?"), ("assistant", "Try cherry tomatoes."),
                       ("user", "And peppers?"), ("assistant", "Peppers need full sun.")]:
        parent = Message.objects.create(conversation=conversation, user=owner, role=role, text=text, parent=parent,
                                        model="gpt-4o" if role == "assistant" else "", prompt_tokens=1234)
    return conversation


def share(client, conversation, **body):
    return client.post(f"/api/library/conversations/{conversation.pk}/shares", body, content_type="application/json")


def test_the_public_page_shows_the_branch_up_to_the_chosen_message_and_nothing_of_the_owner(
        client, owner, conversation):
    answer = Message.objects.get(text="Try cherry tomatoes.")
    client.force_login(owner)
    created = share(client, conversation, message_id=str(answer.pk))
    client.logout()

    page = client.get(created.json()["url"])

    assert created.status_code == 201 and created.json()["messages"] == 2
    assert page.status_code == 200
    html = page.content.decode()
    assert "Garden plans" in html and "Which tomatoes grow in shade?" in html and "Try cherry tomatoes." in html
    assert "And peppers?" not in html
    assert "olga" not in html and "1234" not in html
    assert page["X-Robots-Tag"] == "noindex"


def test_the_page_is_a_snapshot_later_messages_and_edits_do_not_show(client, owner, conversation):
    client.force_login(owner)
    url = share(client, conversation).json()["url"]
    last = Message.objects.get(text="Peppers need full sun.")
    Message.objects.create(conversation=conversation, user=owner, role="user", text="What about basil?", parent=last)
    last.set_text("Edited after sharing.")
    last.save()

    html = client.get(url).content.decode()

    assert "Peppers need full sun." in html
    assert "What about basil?" not in html and "Edited after sharing." not in html


def test_a_message_is_shown_as_text_never_as_markup(client, owner, conversation):
    Message.objects.filter(text="Try cherry tomatoes.").update(text='<script>alert("x")</script>')
    client.force_login(owner)
    url = share(client, conversation).json()["url"]

    html = client.get(url).content.decode()

    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;" in html


def test_a_revoked_link_stops_working_and_leaves_the_owners_list(client, owner, conversation):
    client.force_login(owner)
    created = share(client, conversation).json()

    revoked = client.delete(f"/api/library/shares/{created['id']}")

    assert revoked.status_code == 204
    assert client.get(created["url"]).status_code == 404
    assert client.get("/api/library/shares").json() == []


def test_an_expired_link_stops_working(client, owner, conversation):
    client.force_login(owner)
    created = share(client, conversation, expires_at=(timezone.now() + timedelta(hours=1)).isoformat()).json()
    ShareLink.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.get(created["url"]).status_code == 404
    assert client.get("/api/library/shares").json() == []


def test_an_expiry_in_the_past_is_refused(client, owner, conversation):
    client.force_login(owner)

    response = share(client, conversation, expires_at=(timezone.now() - timedelta(hours=1)).isoformat())

    assert response.status_code == 422
    assert not ShareLink.objects.exists()


def test_the_owner_lists_their_links(client, owner, conversation):
    client.force_login(owner)
    share(client, conversation)

    [listed] = client.get("/api/library/shares").json()

    assert listed["title"] == "Garden plans" and listed["messages"] == 4
    assert listed["conversation_id"] == str(conversation.pk)


def test_a_role_without_sharing_cannot_make_a_link(client, make_user, db):
    role = Role.objects.create(name="No sharing", can_share_conversations=False)
    user = make_user("nina", role=role)
    conversation = Conversation.objects.create(user=user, title="Mine")
    Message.objects.create(conversation=conversation, user=user, role="user", text="hi")
    client.force_login(user)

    response = share(client, conversation)

    assert response.status_code == 403
    assert not ShareLink.objects.exists()


def test_a_message_of_another_conversation_cannot_be_the_end(client, owner, conversation):
    elsewhere = Conversation.objects.create(user=owner, title="Other")
    stranger = Message.objects.create(conversation=elsewhere, user=owner, role="user", text="elsewhere")
    client.force_login(owner)

    assert share(client, conversation, message_id=str(stranger.pk)).status_code == 404


def test_another_user_can_neither_share_list_nor_revoke(client, owner, conversation, make_user):
    client.force_login(owner)
    created = share(client, conversation).json()
    client.force_login(make_user("otto"))

    assert share(client, conversation).status_code == 404
    assert client.get("/api/library/shares").json() == []
    assert client.delete(f"/api/library/shares/{created['id']}").status_code == 404
    assert client.get(created["url"]).status_code == 200


def test_anonymous_can_read_a_live_link_but_not_make_list_or_revoke(client, owner, conversation):
    client.force_login(owner)
    created = share(client, conversation).json()
    client.logout()

    assert share(client, conversation).status_code == 401
    assert client.get("/api/library/shares").status_code == 401
    assert client.delete(f"/api/library/shares/{created['id']}").status_code == 401
    assert client.get("/share/not-a-token").status_code == 404
