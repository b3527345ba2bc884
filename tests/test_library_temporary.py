"""Temporary chats are deleted by Celery beat once the admin-set retention window has passed;
ordinary chats never are."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from chat.models import Conversation, Message
from chat.tasks import purge_temporary_chats
from portal.models import PortalSettings


@pytest.fixture
def owner(make_user):
    return make_user("olga")


def started(owner, *, hours_ago: float, temporary: bool = True, **fields) -> Conversation:
    conversation = Conversation.objects.create(user=owner, title="Chat", temporary=temporary, **fields)
    Message.objects.create(conversation=conversation, user=owner, role="user", text="hello")
    Conversation.objects.filter(pk=conversation.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    return conversation


def remaining() -> set:
    return set(Conversation.objects.values_list("pk", flat=True))


def test_beat_deletes_temporary_chats_past_the_window_with_their_messages(owner):
    old = started(owner, hours_ago=721)
    recent = started(owner, hours_ago=719)
    ordinary = started(owner, hours_ago=5000, temporary=False)

    deleted = purge_temporary_chats.apply().get()  # the task body here, whatever the broker

    assert deleted == 1
    assert remaining() == {recent.pk, ordinary.pk}
    assert not Message.objects.filter(conversation_id=old.pk).exists()


def test_a_window_shortened_by_the_admin_applies_to_chats_already_started(owner):
    settings_row = PortalSettings.load()
    settings_row.temporary_chat_retention_hours = 1
    settings_row.save()
    two_hours = started(owner, hours_ago=2)
    fresh = started(owner, hours_ago=0.5)

    purge_temporary_chats.apply()

    assert remaining() == {fresh.pk}
    assert two_hours.pk not in remaining()


def test_a_chats_own_expiry_wins_over_the_window(owner):
    expiring = started(owner, hours_ago=0, expires_at=timezone.now() - timedelta(minutes=1))

    purge_temporary_chats.apply()

    assert expiring.pk not in remaining()


def test_the_purge_is_on_the_beat_schedule():
    entry = django_settings.CELERY_BEAT_SCHEDULE["chat-purge-temporary-chats"]

    assert entry["task"] == purge_temporary_chats.name


def test_admins_set_the_window_on_the_portal_settings_page(admin_client):
    PortalSettings.load()
    page = admin_client.get("/admin/portal/portalsettings/1/change/")

    assert page.status_code == 200
    assert b"temporary_chat_retention_hours" in page.content


def test_a_window_shortened_by_the_admin_applies_to_chats_with_an_expiry_too(owner):
    started_with_expiry = started(owner, hours_ago=2, expires_at=timezone.now() + timedelta(hours=718))
    settings_row = PortalSettings.load()
    settings_row.temporary_chat_retention_hours = 1
    settings_row.save()

    purge_temporary_chats.apply()

    assert started_with_expiry.pk not in remaining()
