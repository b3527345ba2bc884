"""Share links: a public, read-only snapshot of a conversation's branch up to a chosen message,
revocable and optionally expiring (chat.models.ShareLink)."""
from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

from chat.errors import Forbidden, InvalidRequest, NotFound
from chat.models import Conversation, Message, ShareLink

if TYPE_CHECKING:
    from accounts.models import User


def _latest_leaf(conversation: Conversation) -> Message | None:
    """The end of the branch the chat shows: from the root, the latest child each time."""
    latest: dict[uuid.UUID | None, Message] = {}
    for message in Message.objects.filter(conversation=conversation).order_by("created_at", "id"):
        latest[message.parent_id] = message
    node, leaf = latest.get(None), None
    while node is not None:
        leaf, node = node, latest.get(node.pk)
    return leaf


def share_create(*, user: User, conversation: Conversation, message_id: uuid.UUID | str | None = None,
                 expires_at: datetime | None = None) -> ShareLink:
    """A link to the branch ending at `message_id` (default: the branch the chat shows)."""
    if user.role is None or not user.role.can_share_conversations:
        raise Forbidden("Your role does not allow sharing conversations.")
    if conversation.temporary:
        raise InvalidRequest("A temporary chat cannot be shared.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidRequest("The expiry date must be in the future.")
    if message_id is not None:
        up_to = Message.objects.filter(pk=message_id, conversation=conversation).first()
        if up_to is None:
            raise NotFound("That message is not in this conversation.")
    else:
        up_to = _latest_leaf(conversation)
    if up_to is None:
        raise InvalidRequest("An empty conversation cannot be shared.")
    return ShareLink.objects.create(
        token=secrets.token_urlsafe(24), user=user, conversation=conversation, up_to=up_to,
        title=conversation.title, snapshot=[_public(m) for m in up_to.branch()], expires_at=expires_at,
    )


def _public(message: Message) -> dict[str, str]:
    """What a stranger may see of a message: no ids, tokens, costs or errors."""
    return {"role": message.role, "sender": message.sender if message.role != "user" else "",
            "model": message.model if message.role != "user" else "", "text": message.text,
            "created_at": message.created_at.isoformat()}


def share_revoke(*, link: ShareLink) -> None:
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])


def live_share(token: str) -> ShareLink | None:
    link = ShareLink.objects.filter(token=token).first()
    return link if link is not None and link.is_live() else None
