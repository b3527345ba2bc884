"""The conversation library's routes: search, import, export, bookmarks and archive.
Every route works on the caller's own conversations only: another user's id is a 404."""
from __future__ import annotations

from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, cast
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from ninja import File, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.files import UploadedFile

from accounts.auth import Principal, caller, key_or_session
from chat import exports, presets, search, shares, tags
from chat.importers import import_file, max_bytes
from chat.library_schemas import (
    ApplyPresetIn,
    ArchiveIn,
    ConversationLibraryOut,
    ConversationSettingsOut,
    ConversationTagsIn,
    ImportOut,
    PresetIn,
    PresetOut,
    SearchHitOut,
    ShareIn,
    ShareOut,
    TagIn,
    TagOut,
)
from chat.models import Conversation, Preset, ShareLink, Tag

if TYPE_CHECKING:
    from accounts.models import User

router = Router(tags=["library"], auth=key_or_session)


def _own(request: HttpRequest, conversation_id: UUID) -> Conversation:
    return get_object_or_404(Conversation, pk=conversation_id, user=caller(request).user)


def _require_bookmarks(principal: Principal) -> None:
    if principal.role is None or not principal.role.can_use_bookmarks:
        raise HttpError(403, _("Your role does not include bookmarks."))


class SearchQuery(Schema):
    q: str
    start: datetime | None = None
    end: datetime | None = None
    endpoint: str | None = None
    model: str | None = None
    tag: str | None = None
    limit: int = 20
    offset: int = 0


@router.get("/library/search", response=list[SearchHitOut])
def search_messages(request: HttpRequest, filters: Query[SearchQuery]) -> Any:
    """The caller's messages matching `q` (quotes, `or`, `-word`), best first, with snippets;
    open a hit at `message_id` in `conversation_id`. Temporary chats are never searched."""
    return search.search_messages(
        user=caller(request).user, query=filters.q,
        filters=search.SearchFilters(start=filters.start, end=filters.end, endpoint=filters.endpoint,
                                     model=filters.model, tag=filters.tag),
        limit=max(1, min(filters.limit, 100)), offset=max(0, filters.offset),
    )


@router.post("/library/import", response={201: ImportOut})
def import_conversations(request: HttpRequest, file: File[UploadedFile]) -> Any:
    """Import a LibreChat, ChatGPT (conversations.json or the export zip), Claude or Chatbot UI
    export: every conversation in it, or nothing (422 says what and where)."""
    if file.size is not None and file.size > max_bytes():
        raise HttpError(413, _("The file is larger than the import limit (%(mb)d MB).") % {"mb": max_bytes() >> 20})
    # (an uploaded file is always opened in binary mode; the stubs allow None and text)
    upload = cast(IO[bytes], file.file)
    report = import_file(user=caller(request).user, fileobj=upload, name=file.name or "upload")
    return Status(201, {"conversations": report.conversations, "messages": report.messages})


def _download(body: str, fmt: str, stem: str) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{exports.FORMATS[fmt]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(stem) or "conversation"}.{fmt}"'
    return response


@router.get("/library/export", response={200: None})
def export_all(request: HttpRequest, format: str = "json") -> Any:
    """All of the caller's conversations (temporary ones left out) in one file."""
    conversations = Conversation.objects.filter(user=caller(request).user, temporary=False).order_by("created_at")
    body = exports.export_conversations(conversations, format)
    return _download(body, format, f"atrium-{timezone.now():%Y-%m-%d}")


@router.get("/library/conversations/{conversation_id}/export", response={200: None})
def export_one(request: HttpRequest, conversation_id: UUID, format: str = "md") -> Any:
    conversation = _own(request, conversation_id)
    return _download(exports.export_conversations([conversation], format), format, conversation.title)


@router.get("/library/tags", response=list[TagOut])
def list_tags(request: HttpRequest) -> Any:
    _require_bookmarks(caller(request))
    return tags.tags_with_counts(user=caller(request).user)


@router.post("/library/tags", response={201: TagOut})
def create_tag(request: HttpRequest, payload: TagIn) -> Any:
    _require_bookmarks(caller(request))
    tag = tags.tag_create(user=caller(request).user, name=payload.name)
    return Status(201, {"id": tag.pk, "name": tag.name, "count": tag.conversations.filter(temporary=False).count()})


@router.delete("/library/tags/{tag_id}", response={204: None})
def delete_tag(request: HttpRequest, tag_id: int) -> Any:
    _require_bookmarks(caller(request))
    get_object_or_404(Tag, pk=tag_id, user=caller(request).user).delete()
    return Status(204, None)


def _library_out(conversation: Conversation) -> dict[str, Any]:
    return {"id": conversation.pk, "title": conversation.title, "archived": conversation.archived,
            "tags": sorted(conversation.tags.values_list("name", flat=True))}


@router.put("/library/conversations/{conversation_id}/tags", response=ConversationLibraryOut)
def set_conversation_tags(request: HttpRequest, conversation_id: UUID, payload: ConversationTagsIn) -> Any:
    _require_bookmarks(caller(request))
    conversation = _own(request, conversation_id)
    tags.conversation_set_tags(conversation=conversation, names=payload.tags)
    return _library_out(conversation)


@router.put("/library/conversations/{conversation_id}/archive", response=ConversationLibraryOut)
def archive_conversation(request: HttpRequest, conversation_id: UUID, payload: ArchiveIn) -> Any:
    """Archive (hide from the list, still searchable) or restore; the conversation's place in
    the recent list (updated_at) does not move."""
    conversation = _own(request, conversation_id)
    Conversation.objects.filter(pk=conversation.pk).update(archived=payload.archived)
    conversation.archived = payload.archived
    return _library_out(conversation)


def _share_out(request: HttpRequest, link: ShareLink) -> dict[str, Any]:
    return {"id": link.pk, "conversation_id": link.conversation_id, "title": link.title,
            "url": request.build_absolute_uri(reverse("shared_conversation", args=[link.token])),
            "messages": len(link.snapshot), "created_at": link.created_at, "expires_at": link.expires_at}


@router.post("/library/conversations/{conversation_id}/shares", response={201: ShareOut})
def create_share(request: HttpRequest, conversation_id: UUID, payload: ShareIn) -> Any:
    """A public read-only link to the conversation up to `message_id` (a snapshot: later messages
    are not shown), optionally expiring. Needs the role's `share conversations`."""
    link = shares.share_create(user=caller(request).user, conversation=_own(request, conversation_id),
                               message_id=payload.message_id, expires_at=payload.expires_at)
    return Status(201, _share_out(request, link))


@router.get("/library/shares", response=list[ShareOut])
def list_shares(request: HttpRequest) -> Any:
    """The caller's links that still work (not revoked, not expired), newest first."""
    now = timezone.now()
    links = ShareLink.objects.filter(user=caller(request).user, revoked_at__isnull=True).order_by("-created_at")
    return [_share_out(request, link) for link in links if link.is_live(now)]


@router.delete("/library/shares/{share_id}", response={204: None})
def revoke_share(request: HttpRequest, share_id: UUID) -> Any:
    shares.share_revoke(link=get_object_or_404(ShareLink, pk=share_id, user=caller(request).user))
    return Status(204, None)


def _preset_out(preset: Preset, user: User) -> dict[str, Any]:
    return {"id": preset.pk, "title": preset.title, "endpoint": preset.endpoint.name, "model": preset.model,
            "params": preset.params, "system_prompt": preset.system_prompt, "shared": preset.shared,
            "shared_roles": sorted(r.name for r in preset.shared_roles.all()), "mine": preset.user_id == user.pk}


def _preset_data(payload: PresetIn) -> presets.PresetData:
    return presets.PresetData(**payload.dict())


@router.get("/library/presets", response=list[PresetOut])
def list_presets(request: HttpRequest) -> Any:
    """The caller's presets and those shared with everyone or with the caller's role."""
    user = caller(request).user
    presets.require_presets(user)
    return [_preset_out(p, user) for p in presets.visible_presets(user=user)]


@router.post("/library/presets", response={201: PresetOut})
def create_preset(request: HttpRequest, payload: PresetIn) -> Any:
    preset = presets.preset_save(user=caller(request).user, data=_preset_data(payload))
    return Status(201, _preset_out(preset, caller(request).user))


@router.put("/library/presets/{preset_id}", response=PresetOut)
def update_preset(request: HttpRequest, preset_id: int, payload: PresetIn) -> Any:
    preset = get_object_or_404(Preset, pk=preset_id, user=caller(request).user)
    return _preset_out(presets.preset_save(user=caller(request).user, data=_preset_data(payload), preset=preset),
                       caller(request).user)


@router.delete("/library/presets/{preset_id}", response={204: None})
def delete_preset(request: HttpRequest, preset_id: int) -> Any:
    get_object_or_404(Preset, pk=preset_id, user=caller(request).user).delete()
    return Status(204, None)


@router.put("/library/conversations/{conversation_id}/preset", response=ConversationSettingsOut)
def apply_preset(request: HttpRequest, conversation_id: UUID, payload: ApplyPresetIn) -> Any:
    """The conversation's next turns use the preset (one the caller sees); a new conversation takes
    the preset's fields in its first send."""
    user = caller(request).user
    preset = get_object_or_404(presets.visible_presets(user=user), pk=payload.preset_id)
    conversation = presets.preset_apply(user=user, preset=preset, conversation=_own(request, conversation_id))
    return {"id": conversation.pk, "endpoint": conversation.endpoint_name, "model": conversation.model,
            "params": conversation.params, "system_prompt": conversation.system_prompt}
