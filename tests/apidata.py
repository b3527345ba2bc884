"""Data for the REST API tests: a user's conversation with a branched message tree, a billed
answer, an API key and a provider key — everything the owner-scoping matrix asks about."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from accounts.models import User
from accounts.services import api_key_create
from billing.ledger import Line, Posting, post
from billing.models import Context, TokenType
from chat.models import Conversation, Message, Preset, Tag
from chat.shares import share_create
from endpoints.models import Endpoint, UserProviderKey


@dataclass
class Owned:
    """One user's things, by the names of the API's path parameters."""

    user: User
    conversation: Conversation
    first_question: Message
    first_answer: Message
    edited_question: Message
    edited_answer: Message
    api_key: str
    api_key_id: int
    keyed_endpoint: Endpoint
    tag_id: int
    preset_id: int
    share_id: Any

    @property
    def params(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation.pk,
            "message_id": self.first_answer.pk,
            "key_id": self.api_key_id,
            "endpoint": self.keyed_endpoint.name,
            "tag_id": self.tag_id,
            "preset_id": self.preset_id,
            "share_id": self.share_id,
        }

    @property
    def markers(self) -> list[str]:
        """Strings only this user's data contains."""
        ids = [self.conversation.pk, self.first_question.pk, self.first_answer.pk, self.edited_question.pk,
               self.edited_answer.pk]
        return [str(i) for i in ids] + [self.conversation.title, self.api_key[:12]]


def _message(conversation: Conversation, parent: Message | None, role: str, text: str, at: dt.datetime,
             **fields: Any) -> Message:
    message = Message(conversation=conversation, user=conversation.user, parent=parent, role=role, **fields)
    message.set_text(text)
    message.save()
    Message.objects.filter(pk=message.pk).update(created_at=at)
    message.refresh_from_db()
    return message


def seed(user: User, endpoint: Endpoint, keyed_endpoint: Endpoint, *, title: str = "Owner's plans") -> Owned:
    """A conversation: question → answer, then the question edited (a sibling) → its answer (the
    current branch); the first answer billed 1,200 + 300 tokens; an API key; a provider key."""
    start = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    conversation = Conversation.objects.create(user=user, title=title, endpoint=endpoint,
                                               endpoint_name=endpoint.name, model="test-model")
    q1 = _message(conversation, None, "user", "What is our plan?", start)
    a1 = _message(conversation, q1, "assistant", "Plan A.", start + dt.timedelta(seconds=5), endpoint=endpoint,
                  model="test-model", prompt_tokens=1200, completion_tokens=300, finish_reason="stop")
    q2 = _message(conversation, None, "user", "What is our real plan?", start + dt.timedelta(seconds=60))
    a2 = _message(conversation, q2, "assistant", "Plan B.", start + dt.timedelta(seconds=65), endpoint=endpoint,
                  model="test-model", finish_reason="stop")
    posting = Posting(context=Context.MESSAGE, conversation_id=conversation.pk, message_id=a1.pk,
                      endpoint=endpoint, model="test-model")
    post(user=user, posting=posting, now=start + dt.timedelta(seconds=6), lines=[
        Line(TokenType.PROMPT, Decimal("-3.6"), tokens=1200, rate=Decimal("0.003")),
        Line(TokenType.COMPLETION, Decimal("-4.5"), tokens=300, rate=Decimal("0.015")),
    ])
    issued = api_key_create(user=user, name="script")
    UserProviderKey.objects.create(user=user, endpoint=keyed_endpoint, api_key="sk-owners-own-key-123456")
    tag = Tag.objects.create(user=user, name=f"{title} tag")
    tag.conversations.add(conversation)
    preset = Preset.objects.create(user=user, title=f"{title} preset", endpoint=endpoint, model="test-model")
    share = share_create(user=user, conversation=conversation)
    return Owned(user, conversation, q1, a1, q2, a2, issued.key, issued.api_key.pk, keyed_endpoint, tag.pk,
                 preset.pk, share.pk)
