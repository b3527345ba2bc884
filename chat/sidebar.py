"""What the chat page's sidebar shows first: the first page of the user's active conversations
(neither archived nor temporary, most recently active first; later pages come from
GET /api/conversations with the same filter), which one is open, and the user's bookmarks with
their counts when the role has bookmarks, and whether the role may share conversations. The page
groups the items by the reader's local day in the browser (chat/static/chat/js/sidebar-groups.js),
so no time zone is guessed here."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat.models import Conversation, Tag
from chat.selectors import ConversationFilter, conversation_page
from chat.tags import tags_with_counts

if TYPE_CHECKING:
    from accounts.models import User

PAGE_SIZE = 30
ACTIVE = ConversationFilter(archived=False, temporary=False)


@dataclass(frozen=True)
class Item:
    id: uuid.UUID
    title: str
    updated: str  # ISO 8601 with offset, for the browser to group by local day
    tags_json: str  # its bookmarks' names, a JSON list
    current: bool


@dataclass(frozen=True)
class Sidebar:
    items: list[Item]
    next_cursor: str | None
    current_id: uuid.UUID | None
    bookmarks: bool  # the role includes bookmarks
    tags: list[Tag]  # with `count`; empty without bookmarks
    share: bool = False  # the role may share conversations (the menu's Share…)
    page_size: int = PAGE_SIZE


def item_of(conversation: Conversation, current_id: uuid.UUID | None) -> Item:
    return Item(
        id=conversation.pk, title=conversation.title, updated=conversation.updated_at.isoformat(),
        tags_json=json.dumps(sorted(t.name for t in conversation.tags.all())), current=conversation.pk == current_id,
    )


def sidebar_for(*, user: User, current_id: uuid.UUID | None = None) -> Sidebar:
    page, cursor = conversation_page(user=user, limit=PAGE_SIZE, where=ACTIVE)
    bookmarks = bool(user.role and user.role.can_use_bookmarks)
    return Sidebar(
        items=[item_of(c, current_id) for c in page], next_cursor=cursor, current_id=current_id,
        bookmarks=bookmarks, tags=tags_with_counts(user=user) if bookmarks else [],
        share=bool(user.role and user.role.can_share_conversations),
    )
