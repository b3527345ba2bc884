from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from chat.models import Conversation, Message, Preset
from portal.admin import LargeTableAdmin


class UsersRecordAdmin(LargeTableAdmin):
    """Conversations and messages are the users' records: admins read them, never write them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(UsersRecordAdmin):
    """Read-only; an admin may delete a conversation (with its messages), which the audit log keeps."""

    list_display = ["title", "user", "endpoint_name", "model", "temporary", "archived", "updated_at"]
    list_filter = ["temporary", "archived", "endpoint"]
    list_select_related = ["user"]
    search_fields = ["=id", "title", "user__username", "user__email"]
    fields = readonly_fields = (
        "id", "title", "user", "endpoint", "endpoint_name", "model", "model_spec", "params", "system_prompt",
        "temporary", "expires_at", "archived", "created_at", "updated_at",
    )

    def get_deleted_objects(
        self, objs: Sequence[Any] | QuerySet[Any], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        # A conversation goes with its messages, which are not deletable one by one.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(Message._meta.verbose_name)
        return deleted, counts, perms_needed, protected


@admin.register(Message)
class MessageAdmin(UsersRecordAdmin):
    """Read-only, not deletable one by one: a message's answers and edits hang below it (delete
    the conversation instead)."""

    list_display = [
        "short_text",
        "role",
        "conversation",
        "user",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "unfinished",
        "created_at",
    ]
    list_filter = ["role", "unfinished"]
    list_select_related = ["user", "conversation"]
    search_fields = ["=id", "=conversation__id", "user__username"]
    fields = readonly_fields = (
        "id", "conversation", "user", "parent", "role", "text", "content", "endpoint", "model", "sender",
        "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
        "finish_reason", "error", "unfinished", "in_flight", "created_at", "updated_at",
    )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return Truncator(obj.text or obj.error).chars(80)


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # (generic in django-stubs only)
    list_display = ["title", "user", "endpoint", "model", "shared", "updated_at"]
    list_filter = ["shared", "endpoint"]
    list_select_related = ["user", "endpoint"]
    search_fields = ["title", "user__username", "model"]
    raw_id_fields = ["user", "endpoint"]
