"""Conversations hold a tree of messages (parent links). Message content is a list of typed parts
so reasoning, tool calls and attachments fit without a schema change."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from accounts.models import User


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def owned_by(self, user: User) -> ConversationQuerySet:
        return self.filter(user=user)


class Conversation(models.Model):
    DEFAULT_TITLE = "New Chat"  # until a title is generated or given

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=300, default=DEFAULT_TITLE)
    endpoint = models.ForeignKey(
        "endpoints.Endpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    endpoint_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    model_spec = models.ForeignKey(
        "endpoints.ModelSpec", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    params = models.JSONField(default=dict, blank=True, help_text="temperature, top_p, max tokens, … used.")
    system_prompt = models.TextField(blank=True)
    temporary = models.BooleanField(default=False, help_text="Deleted after the retention window.")
    expires_at = models.DateTimeField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["user", "-updated_at"], name="convo_user_recent")]

    def __str__(self) -> str:
        return self.title


class Role(models.TextChoices):
    USER = "user", "user"
    ASSISTANT = "assistant", "assistant"
    SYSTEM = "system", "system"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages",
        help_text="Owner (same as the conversation's), kept for owner-scoped queries.",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.JSONField(
        default=list, blank=True,
        help_text='Parts: [{"type": "text", "text": …}, {"type": "reasoning", "text": …}, '
        '{"type": "tool_call", "id", "name", "arguments"}, {"type": "attachment", …}]',
    )
    text = models.TextField(blank=True, help_text="The text parts joined (search, export, context).")
    endpoint = models.ForeignKey(
        "endpoints.Endpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.CharField(max_length=200, blank=True)
    sender = models.CharField(max_length=200, blank=True, help_text="Label shown beside the message.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_read_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_write_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    unfinished = models.BooleanField(default=False, help_text="Stopped or cut off before the provider finished.")
    in_flight = models.JSONField(
        null=True, blank=True, editable=False,
        help_text="Set while the answer is being written, cleared when it ends: what finishing it needs "
        "if its process dies (chat.recovery).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="msg_convo_order"),
            models.Index(fields=["parent", "created_at"], name="msg_siblings"),
            models.Index(fields=["user", "-created_at"], name="msg_user_recent"),
            # chat.recovery's scan for answers whose process died: only rows still being written
            models.Index(fields=["updated_at"], name="msg_in_flight", condition=models.Q(in_flight__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"

    def set_text(self, text: str) -> None:
        """Replace the text parts with one text part, keeping other parts."""
        others = [p for p in self.content if p.get("type") != "text"]
        self.content = [*others, {"type": "text", "text": text}]
        self.text = text

    def branch(self) -> list[Message]:
        """The path from the root to this message (the context of a reply), oldest first."""
        by_id = {m.id: m for m in Message.objects.filter(conversation_id=self.conversation_id)}
        path: list[Message] = []
        node: Message | None = by_id.get(self.id, self)
        while node is not None:
            path.append(node)
            node = by_id.get(node.parent_id) if node.parent_id else None
        return path[::-1]


class Preset(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets")
    title = models.CharField(max_length=200)
    endpoint = models.ForeignKey("endpoints.Endpoint", on_delete=models.CASCADE, related_name="presets")
    model = models.CharField(max_length=200)
    system_prompt = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    shared = models.BooleanField(default=False, help_text="Visible to every user, who may apply it.")
    shared_roles = models.ManyToManyField(
        "accounts.Role", blank=True, related_name="+", help_text="Visible to the users of these roles."
    )
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        indexes = [models.Index(fields=["user", "title"], name="preset_user")]

    def __str__(self) -> str:
        return self.title


class Tag(models.Model):
    """A user's bookmark (LibreChat's name): a label put on conversations, listed with its count."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)
    conversations = models.ManyToManyField(Conversation, related_name="tags", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="tag_unique_per_user")]

    def __str__(self) -> str:
        return self.name


class ShareLink(models.Model):
    """A read-only public page of a conversation up to one message. The page shows `snapshot`, the
    branch copied when the link was made (role, label, model, text only): later messages, edits and
    deletions do not change it, and nothing of the owner (email, balance, costs) is in it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="share_links")
    up_to = models.ForeignKey(Message, null=True, on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(max_length=300)
    snapshot = models.JSONField(default=list, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="share_user_recent")]

    def __str__(self) -> str:
        return self.title

    def is_live(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
