from __future__ import annotations

from django.contrib import admin
from django.utils.text import Truncator

from chat.models import Conversation, Message, Preset
from portal.admin import LargeTableAdmin


@admin.register(Conversation)
class ConversationAdmin(LargeTableAdmin):
    list_display = ["title", "user", "endpoint_name", "model", "temporary", "archived", "updated_at"]
    list_filter = ["temporary", "archived", "endpoint"]
    list_select_related = ["user"]
    search_fields = ["=id", "title", "user__username", "user__email"]
    raw_id_fields = ["user", "endpoint", "model_spec"]
    readonly_fields = ["id", "created_at", "updated_at"]


@admin.register(Message)
class MessageAdmin(LargeTableAdmin):
    list_display = ["short_text", "role", "conversation", "user", "model", "prompt_tokens", "completion_tokens", "unfinished", "created_at"]
    list_filter = ["role", "unfinished"]
    list_select_related = ["user", "conversation"]
    search_fields = ["=id", "=conversation__id", "user__username"]
    raw_id_fields = ["conversation", "user", "parent", "endpoint"]
    readonly_fields = ["id", "in_flight", "created_at", "updated_at"]

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return Truncator(obj.text or obj.error).chars(80)


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ["title", "user", "endpoint", "model", "shared", "updated_at"]
    list_filter = ["shared", "endpoint"]
    list_select_related = ["user", "endpoint"]
    search_fields = ["title", "user__username", "model"]
    raw_id_fields = ["user", "endpoint"]
