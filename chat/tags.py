"""Bookmarks (LibreChat's name for tags on conversations): a user's own labels with counts."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Count, Q

from chat.errors import InvalidRequest
from chat.models import Conversation, Tag

if TYPE_CHECKING:
    from accounts.models import User

MAX_NAME = 100


def tags_with_counts(*, user: User) -> list[Tag]:
    """The user's tags, each with `count`: its conversations, temporary ones left out."""
    return list(
        Tag.objects.filter(user=user)
        .annotate(count=Count("conversations", filter=Q(conversations__temporary=False)))
        .order_by("name")
    )


def _clean(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidRequest("A bookmark needs a name.")
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"A bookmark name has at most {MAX_NAME} characters.")
    return name


def tag_create(*, user: User, name: str) -> Tag:
    tag, _ = Tag.objects.get_or_create(user=user, name=_clean(name))
    return tag


@transaction.atomic
def conversation_set_tags(*, conversation: Conversation, names: list[str]) -> list[str]:
    """Put exactly these tags (created when new) on the conversation; returns their names, sorted."""
    wanted = sorted({_clean(n) for n in names})
    tags = [Tag.objects.get_or_create(user_id=conversation.user_id, name=n)[0] for n in wanted]
    conversation.tags.set(tags)
    return wanted
