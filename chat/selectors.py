"""Reads of conversations and messages for the REST API, each scoped to its owner: a conversation
or message of another user is simply not found."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Prefetch, Q
from django.utils import timezone

from billing.selectors import UsageTotals, display_currency, message_usage
from chat.models import Conversation, Message, Tag
from chat.temporary import expired_temporary

if TYPE_CHECKING:
    from accounts.models import User

MAX_PAGE = 100


class BadCursor(ValueError):
    """A cursor this API did not hand out."""


# --- conversations, newest first ---------------------------------------------------------------


@dataclass(frozen=True)
class ConversationFilter:
    since: dt.date | None = None  # last activity on or after this day (the portal's time zone)
    until: dt.date | None = None  # ... on or before this day
    endpoint: str | None = None  # endpoint name
    model: str | None = None
    archived: bool = False  # only archived conversations (else: only those not archived)
    temporary: bool | None = None  # only temporary chats (True) or none (False); None: both
    tag: str | None = None  # only conversations carrying the user's bookmark (tag) of this name


def encode_cursor(conversation: Conversation) -> str:
    raw = f"{conversation.updated_at.isoformat()}|{conversation.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.split("|")
        when = dt.datetime.fromisoformat(stamp)
        if when.tzinfo is None:
            raise ValueError(stamp)
        return when, uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("The cursor is not one this API returned.") from None


def conversation_page(
    *, user: User, cursor: str | None = None, limit: int = 20, where: ConversationFilter | None = None
) -> tuple[list[Conversation], str | None]:
    """One page of the user's conversations, most recently active first, and the cursor of the
    next page (None at the end). A cursor is the last row's (updated_at, id): keyset pagination,
    stable while conversations are added; the filters only narrow the rows it walks. Archived
    conversations are listed only when asked for (and then alone); temporary chats past their
    expiry (chat.temporary), which the purge has not deleted yet, never."""
    where = where or ConversationFilter()
    rows = (
        Conversation.objects.owned_by(user)
        .filter(archived=where.archived)
        .exclude(expired_temporary())
        .select_related("endpoint", "model_spec")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
        .order_by("-updated_at", "-id")
    )
    tz = timezone.get_current_timezone()
    if where.since is not None:
        rows = rows.filter(updated_at__gte=dt.datetime.combine(where.since, dt.time.min, tzinfo=tz))
    if where.until is not None:
        end = dt.datetime.combine(where.until + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        rows = rows.filter(updated_at__lt=end)
    if where.endpoint:
        rows = rows.filter(Q(endpoint__name=where.endpoint) | Q(endpoint__isnull=True, endpoint_name=where.endpoint))
    if where.model:
        rows = rows.filter(model=where.model)
    if where.temporary is not None:
        rows = rows.filter(temporary=where.temporary)
    if where.tag:  # (a user's tag names are unique: one row per conversation)
        rows = rows.filter(tags__user=user, tags__name=where.tag)
    if cursor:
        when, pk = _decode_cursor(cursor)
        rows = rows.filter(Q(updated_at__lt=when) | Q(updated_at=when, id__lt=pk))
    limit = max(1, min(limit, MAX_PAGE))
    page = list(rows[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (encode_cursor(page[-1]) if more and page else None)


# --- one conversation and its message tree ---------------------------------------------------------


@dataclass(frozen=True)
class Node:
    message: Message
    siblings: list[uuid.UUID]  # the children of its parent (itself included), oldest first
    children: list[uuid.UUID]
    current: bool  # on the current branch (the path to the newest message)


@dataclass(frozen=True)
class Thread:
    conversation: Conversation
    nodes: list[Node]  # every message, oldest first
    current_id: uuid.UUID | None  # the newest message: a send without a parent answers it


def conversation_thread(*, user: User, conversation_id: uuid.UUID) -> Thread | None:
    """The user's conversation with its whole message tree, or None."""
    conversation = (
        Conversation.objects.owned_by(user).select_related("endpoint", "model_spec").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return None
    # (prefetched, not joined: one Endpoint per endpoint, so its encrypted key is decrypted once, not per message)
    rows = Message.objects.filter(conversation=conversation, user=user).prefetch_related("endpoint")
    messages = list(rows.order_by("created_at", "id"))
    children: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for message in messages:
        children.setdefault(message.parent_id, []).append(message.id)
    by_id = {message.id: message for message in messages}
    newest = max(messages, key=lambda m: (m.created_at, str(m.id)), default=None)
    current: set[uuid.UUID] = set()
    node = newest
    while node is not None and node.id not in current:
        current.add(node.id)
        node = by_id.get(node.parent_id) if node.parent_id else None
    nodes = [
        Node(m, children.get(m.parent_id, []), children.get(m.id, []), m.id in current) for m in messages
    ]
    return Thread(conversation, nodes, newest.id if newest else None)


def thread_usage(*, user: User, thread: Thread) -> dict[uuid.UUID, UsageTotals]:
    return message_usage(user=user, message_ids=[node.message.id for node in thread.nodes])


def message_with_usage(*, user: User, message_id: uuid.UUID) -> tuple[Message, UsageTotals] | None:
    """One of the user's messages and what it cost (zero for a user message), or None."""
    message = Message.objects.filter(user=user, pk=message_id).select_related("endpoint").first()
    if message is None:
        return None
    usage = message_usage(user=user, message_ids=[message.id]).get(message.id)
    return message, usage or UsageTotals.from_row({}, display_currency())
