"""Presets: a saved endpoint + model + parameters + system prompt under a name (LibreChat's
presets). Saving and applying one go through `chat.policy.resolve_target`, so a preset never
reaches an endpoint, model or parameter its user's role may not use.

Who sees a preset: its owner; everyone when `shared`; the users of its `shared_roles`. A user may
share with their own role; sharing with everyone or with other roles is for staff (admins curate
the presets in the admin)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.models import Role
from chat.errors import Forbidden, InvalidRequest
from chat.models import Conversation, Preset
from chat.policy import resolve_target

if TYPE_CHECKING:
    from accounts.models import User


@dataclass
class PresetData:
    title: str
    endpoint: str | int
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    system_prompt: str = ""
    shared: bool = False
    shared_roles: list[str] = field(default_factory=list)


def require_presets(user: User) -> None:
    if user.role is None or not user.role.can_use_presets:
        raise Forbidden("Your role does not include presets.")


def visible_presets(*, user: User) -> QuerySet[Preset]:
    mine_or_shared = Q(user=user) | Q(shared=True)
    if user.role_id:
        mine_or_shared |= Q(shared_roles=user.role_id)
    return (Preset.objects.filter(mine_or_shared).distinct().select_related("endpoint")
            .prefetch_related("shared_roles").order_by("title", "pk"))


def _roles(user: User, data: PresetData) -> list[Role]:
    names = sorted(set(data.shared_roles))
    roles = list(Role.objects.filter(name__in=names))
    missing = set(names) - {r.name for r in roles}
    if missing:
        raise InvalidRequest(f"There is no role {', '.join(sorted(missing))}.")
    if not user.is_staff and (data.shared or any(r.pk != user.role_id for r in roles)):
        raise Forbidden("You may share a preset with your own role only; an administrator can share it wider.")
    return roles


@transaction.atomic
def preset_save(*, user: User, data: PresetData, preset: Preset | None = None) -> Preset:
    """Create (or, given `preset`, replace) a preset after checking the user may use what it holds."""
    require_presets(user)
    title = " ".join(data.title.split())
    if not title:
        raise InvalidRequest("A preset needs a name.")
    target, _ = resolve_target(user=user, endpoint=data.endpoint, model=data.model, params=data.params,
                               system_prompt=data.system_prompt)
    roles = _roles(user, data)
    preset = preset or Preset(user=user)
    preset.title, preset.endpoint, preset.model = title[:200], target.endpoint, target.model
    preset.params, preset.system_prompt, preset.shared = target.params, target.system_prompt, data.shared
    preset.save()
    preset.shared_roles.set(roles)
    return preset


def preset_apply(*, user: User, preset: Preset, conversation: Conversation) -> Conversation:
    """The conversation's next turns use the preset's endpoint, model, parameters and prompt."""
    require_presets(user)
    target, _ = resolve_target(user=user, endpoint=preset.endpoint, model=preset.model, params=preset.params,
                               system_prompt=preset.system_prompt, conversation=conversation)
    conversation.endpoint, conversation.endpoint_name = target.endpoint, target.endpoint.name
    conversation.model, conversation.model_spec = target.model, None
    conversation.params, conversation.system_prompt = target.params, target.system_prompt
    conversation.save(update_fields=["endpoint", "endpoint_name", "model", "model_spec", "params",
                                     "system_prompt", "updated_at"])
    return conversation
